"""A stop ends a run within one forward: the faces in the generator finish, and every photo
whose faces have not all been through it is left undone for the rerun.

The generator here is gated: its first forward tells the test it has begun and waits for
the test to let it end, so what is "in the generator" when the stop comes is known exactly.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
from test_batch import PlacedFaces, SpyModel, make_restorer, photo, run_folder, write_image
from test_cli_end_of_run import aligned, invoke_as_typed, write_photos

from gpen_cli.stages.faces import Face


class GatedModel(SpyModel):
    """SpyModel whose first forward sets `inside` and returns only once `leave` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.leave = threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.inside.is_set():
            self.inside.set()
            assert self.leave.wait(30), "the test never let the first forward end"
        return super().forward(x)


class FacesByWidth(PlacedFaces):
    """One face in a photo 100 pixels wide, three in one 220 wide."""

    SPOTS = {100: [(20, 16)], 220: [(20, 16), (90, 16), (150, 16)]}

    def detect(self, image: np.ndarray) -> list[Face]:
        self.corners = self.SPOTS[image.shape[1]]
        return super().detect(image)


def stop_inside_the_first_forward(model: GatedModel, run) -> object:
    """`run(stop)` in a thread, stopped while its first forward runs; its outcome."""
    stop, outcome = threading.Event(), {}
    thread = threading.Thread(target=lambda: outcome.update(done=run(stop)))
    thread.start()
    assert model.inside.wait(30)
    stop.set()
    model.leave.set()
    thread.join(30)
    assert not thread.is_alive()
    return outcome["done"]


def test_a_stop_finishes_the_forward_under_way_and_leaves_every_queued_photo(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    names = [f"p{index:02d}.png" for index in range(10)]
    for name in names:
        write_image(source / name, photo())  # one face each
    model = GatedModel()
    restorer = make_restorer(model, batch_size=1)

    outcome = stop_inside_the_first_forward(
        model, lambda stop: run_folder(restorer, source, out, stop=stop, workers=2)
    )

    # The ten photos were all admitted (4 x workers + 1) and four prepared ahead, but only
    # the face in the generator went through it.
    assert len(model.batches) == 1
    assert outcome.interrupted
    assert [(Path(e.input).name, e.status) for e in outcome.entries] == [("p00.png", "ok")]
    assert [path.name for path in out.iterdir()] == ["p00.png"]

    again = run_folder(make_restorer(batch_size=1), source, out)
    assert not again.interrupted
    assert [e.reason for e in again.entries] == ["already_done"] + [None] * 9
    assert sorted(path.name for path in out.iterdir()) == names


def test_a_photo_with_faces_still_waiting_is_abandoned_and_one_completed_is_written(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    write_image(source / "a_one_face.png", photo(96, 100))
    write_image(source / "b_three_faces.png", photo(96, 220))
    write_image(source / "c_one_face.png", photo(96, 100))
    model = GatedModel()
    restorer = make_restorer(model, batch_size=2, detector=FacesByWidth())

    # The first batch: a's face and b's first; b's other two wait behind it, and c.
    outcome = stop_inside_the_first_forward(
        model, lambda stop: run_folder(restorer, source, out, stop=stop, workers=1)
    )

    assert len(model.batches) == 1 and len(model.batches[0]) == 2
    assert outcome.interrupted and outcome.faces == 1
    assert [(Path(e.input).name, e.status) for e in outcome.entries] == [("a_one_face.png", "ok")]
    assert [path.name for path in out.iterdir()] == ["a_one_face.png"]


def test_cli_sigterm_stops_within_a_forward_exits_130_and_reports_interrupted(
    tmp_path, monkeypatch, tiny_checkpoint
):
    from gpen_cli.cli import batch as batch_command
    from gpen_cli.pipeline.restorer import FaceRestorer

    write_photos(tmp_path / "in", 12)
    out, report = tmp_path / "out", tmp_path / "report.json"
    real_forward, real_handlers = FaceRestorer.forward, batch_command.stop_handlers
    forwards, told = [], threading.Event()

    def handlers(*args):
        first, second = real_handlers(*args)
        return (lambda signum: (first(signum), told.set())), second

    def forward(self, crops):
        forwards.append(len(crops))
        if len(forwards) == 1:  # a service manager stops the job during the first forward
            os.kill(os.getpid(), signal.SIGTERM)
            assert told.wait(30)
        return real_forward(self, crops)

    monkeypatch.setattr(batch_command, "stop_handlers", handlers)
    monkeypatch.setattr(FaceRestorer, "forward", forward)
    args = ["batch", str(tmp_path / "in"), "-o", str(out), *aligned(tiny_checkpoint)]
    result = invoke_as_typed(monkeypatch, *args, "--report", str(report), "--workers", "2")

    assert result.exit_code == 130, result.output
    assert forwards == [1]
    assert "stopping: finishing the faces being restored; a second SIGTERM stops at once" in (
        result.output
    )
    assert "Ctrl-C" not in result.output
    assert "gpen batch (interrupted)" in result.output
    payload = json.loads(report.read_text())
    assert payload["interrupted"] is True and payload["faces_restored"] == 1
    assert [Path(r["input"]).name for r in payload["results"]] == ["p00.png"]
    assert [path.name for path in out.iterdir()] == ["p00.png"]
    assert cv2.imread(str(out / "p00.png")).shape == (64, 64, 3)


def test_progress_lines_leave_room_for_the_terminals_echo_of_ctrl_c(monkeypatch):
    # A "^C" echoed at the end of a full-width line wraps it, and the redraw then leaves a
    # stale copy of the bar above the `stopping:` line.
    import io

    from rich.console import Console

    from gpen_cli.cli import common, runs

    screen = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(common, "err_console", screen)
    monkeypatch.setattr(runs, "err_console", screen)
    bars = [common.rate_progress("images", quiet=False), runs.photo_progress(quiet=False)]
    for bar in bars:
        bar.add_task("a long description " * 6, total=400, completed=40, faces=12345, rate=1.5)
        with screen.capture() as captured:
            screen.print(bar.get_renderable())
        lines = captured.get().splitlines()
        assert lines and max(len(line) for line in lines) <= 78, lines
