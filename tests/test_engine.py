"""The one engine interface: an engine defined here alone, one photo at a time, picked by
`gpen batch --engine` through the table, gives the thread engine's outputs and report."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import pytest
from test_cli_end_of_run import aligned, write_photos
from typer.testing import CliRunner

from gpen_cli.batch import Engine, PhotoProgress, steps
from gpen_cli.batch.engine import Tally
from gpen_cli.batch.engines import ENGINES, EngineChoice, EngineSetup
from gpen_cli.batch.job import Item
from gpen_cli.cli import app
from gpen_cli.core.config import RestoreConfig
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.report import ReportEntry
from gpen_cli.pipeline.restorer import FaceRestorer


class SequentialEngine(Engine):
    """Each photo in the caller's thread, its faces through the generator on their own."""

    name = "sequential"

    def __init__(self, restorer: FaceRestorer) -> None:
        self.restorer = restorer

    @property
    def aligned(self) -> bool:
        return self.restorer.aligned

    def restore(
        self, items: Iterable[Item], output: OutputOptions, stop: threading.Event, tally: Tally
    ) -> bool:
        for item in items:
            if stop.is_set():
                return True
            if isinstance(item, ReportEntry):
                tally(item)
                continue
            tally(PhotoProgress(str(item.source), "started"))
            started = time.perf_counter()
            try:
                prepared = steps.prepare(self.restorer, item)
            except Exception as exc:
                tally(steps.failed_entry(item, exc, started))
                continue
            restored = self.restorer.forward(prepared.prepared.model_inputs)
            tally(steps.finish(self.restorer, prepared, restored, output))
        return False


def _sequential(config: RestoreConfig, setup: EngineSetup) -> Engine:
    return SequentialEngine(FaceRestorer(config=config))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def results(report: Path, out: Path) -> list[dict]:
    """The report's entries, without their times, outputs relative to `out`."""
    entries = json.loads(report.read_text())["results"]
    for entry in entries:
        entry.pop("seconds")
        if entry["output"]:
            entry["output"] = str(Path(entry["output"]).relative_to(out))
    return entries


@pytest.mark.slow
def test_an_engine_defined_in_a_test_is_picked_from_the_table_and_writes_the_same(
    tmp_path, monkeypatch, tiny_checkpoint
):
    monkeypatch.setitem(ENGINES, "sequential", EngineChoice(_sequential, "Loading…", "stopping"))
    source = tmp_path / "in"
    write_photos(source / "sub", 3)
    cv2.imwrite(str(source / "grey.png"), cv2.imread(str(source / "sub" / "p00.png"), 0))
    (source / "broken.png").write_bytes(b"\x89PNG not really")
    (source / "notes.txt").write_text("not a photo")
    runs = {}
    for engine in ("thread", "sequential"):
        out, report = tmp_path / engine, tmp_path / f"{engine}.json"
        args = ["batch", str(source), "-o", str(out), "--engine", engine, "--compare"]
        done = CliRunner().invoke(app, [*args, *aligned(tiny_checkpoint), "--report", str(report)])
        assert done.exit_code == 1, done.output  # broken.png failed, in both
        runs[engine] = tree(out), results(report, out)
    assert runs["sequential"] == runs["thread"]
    files, entries = runs["thread"]
    assert len(files) == 2 * 4  # four photos written, each with its comparison
    assert [e["status"] for e in entries] == ["failed", "ok", "skipped", "ok", "ok", "ok"]
