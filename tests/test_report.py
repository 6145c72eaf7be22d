"""The JSON report: versioned, with the keys its docstring documents."""

from __future__ import annotations

import json

from gpen_cli.report import REPORT_SCHEMA_VERSION, FacesSummary, ReportEntry, write_report


def test_the_report_is_versioned_and_carries_the_documented_keys(tmp_path):
    entry = ReportEntry(
        input="in/a.jpg",
        output="out/a.jpg",
        status="ok",
        faces=FacesSummary(count=1, boxes=[[10.0, 20.0, 110.0, 140.0]], scores=[0.99]),
        output_size=[640, 480],
    )
    path = tmp_path / "r.json"
    write_report(path, [entry], {"command": "restore"})
    report = json.loads(path.read_text())
    assert report["schema_version"] == REPORT_SCHEMA_VERSION
    assert report["summary"]["ok"] == 1 and report["summary"]["faces"] == 1
    (result,) = report["results"]
    assert {"input", "output", "status", "faces", "error", "seconds", "note", "output_size"} <= set(
        result
    )
    x1, y1, x2, y2 = result["faces"]["boxes"][0]  # left, top, right, bottom
    assert x1 < x2 and y1 < y2
    assert [path.name for path in tmp_path.iterdir()] == ["r.json"]  # nothing left beside it
