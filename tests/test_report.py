"""The JSON report: versioned, with the keys its docstring documents."""

from __future__ import annotations

import json

from gpen_cli.pipeline.report import REPORT_SCHEMA_VERSION, FacesSummary, ReportEntry, write_report


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


def test_a_resumed_batch_reports_the_whole_job(tmp_path, tiny_checkpoint):
    """The second run finds a.png done: its report keeps what the first run said of it."""
    import cv2
    import numpy as np
    from typer.testing import CliRunner

    from gpen_cli.cli import app

    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    source.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(source / "a.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    args = ["batch", str(source), "-o", str(out), "--report", str(report)]
    args += ["--model", str(tiny_checkpoint), "--aligned", "--device", "cpu"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = json.loads(report.read_text())["results"][0]
    cv2.imwrite(str(source / "b.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert CliRunner().invoke(app, args).exit_code == 0
    second = json.loads(report.read_text())
    assert second["summary"]["ok"] == 2 and second["summary"]["skipped"] == 0
    assert second["results"][0] == first  # a.png, as the first run reported it
    assert second["results"][1]["input"].endswith("b.png")
    assert second["results"][1]["status"] == "ok"
    assert second["faces_restored"] == 1  # this run's own work
