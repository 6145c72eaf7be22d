"""`gpen batch`: folder layout, bad inputs, cross-photo batching, stop and resume, exit codes."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import threading
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_as
from torch import nn
from typer.testing import CliRunner

from gpen_cli.batch import FolderScan, PhotoJob, ThreadEngine, plan_layout
from gpen_cli.batch.scan import ALREADY_DONE
from gpen_cli.batch.signals import graceful_stop
from gpen_cli.cli import app
from gpen_cli.core.errors import GpenError
from gpen_cli.flow.gather import CropGatherer
from gpen_cli.io.atomic import is_partial_file
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.align import reference_points
from gpen_cli.stages.faces import Face

SIZE = 64
RNG = np.random.default_rng(3)


# --------------------------------------------------------------------------- helpers


class SpyModel(nn.Module):
    """Returns its input; records, per forward call, each face's mean RGB (in [-1, 1])."""

    size = SIZE

    def __init__(self, fail_calls: tuple[int, ...] = ()):
        super().__init__()
        self.batches: list[list[tuple[float, ...]]] = []
        self.fail_calls = fail_calls
        self._lock = threading.Lock()
        self.eval()  # ready to run: the restorer runs this very module, so its records are ours

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._lock:
            call = len(self.batches)
            self.batches.append([tuple(face.float().mean(dim=(1, 2)).tolist()) for face in x])
        if call in self.fail_calls:
            raise RuntimeError("simulated device failure")
        return x


class PlacedFaces:
    """A detector that 'finds' faces at fixed spots: each crop lies wholly inside the photo."""

    def __init__(self, corners: list[tuple[int, int]] | None = None, side: int = 60):
        self.corners = corners if corners is not None else [(20, 16)]
        self.side = side

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = []
        for x0, y0 in self.corners:
            landmarks = reference_points(SIZE) * (self.side / SIZE) + np.array([x0, y0])
            box = np.array([x0, y0, x0 + self.side, y0 + self.side], dtype=np.float64)
            faces.append(Face(box, 0.99, landmarks))
        return faces


def make_restorer(model: nn.Module | None = None, *, batch_size: int = 4, **kwargs) -> FaceRestorer:
    kwargs.setdefault("detector", PlacedFaces())
    return FaceRestorer(
        model if model is not None else SpyModel(),
        device="cpu",
        batch_size=batch_size,
        mask="rect",
        **kwargs,
    )


def write_image(path: Path, image: np.ndarray) -> Path:
    """Encode by extension; tofile so unicode names work."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buffer = cv2.imencode(path.suffix, image)
    assert ok
    buffer.tofile(str(path))
    return path


def read_image(path: Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a readable image"
    return image


def photo(height: int = 96, width: int = 100) -> np.ndarray:
    """Smooth content with some texture, which JPEG keeps within a few levels."""
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
    return np.clip(base + RNG.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def png_with_bogus_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) with its sha256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def partial_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if is_partial_file(path)]


def by_input(entries) -> dict[str, object]:
    return {Path(entry.input).name: entry for entry in entries}


def run_folder(
    restorer,
    input_dir,
    output_dir,
    stop=None,
    on_event=None,
    *,
    workers=2,
    gather_seconds=None,
    recursive=True,
    pattern=None,
    engine=ThreadEngine,
    **written,
):
    """`gpen batch` without the CLI, on the thread engine (or `engine`, given the same)."""
    job = PhotoJob(FolderScan(plan_layout(input_dir, output_dir), recursive, pattern),
                   OutputOptions(**written))  # fmt: skip
    return engine(restorer, workers, gather_seconds).run(job, stop, on_event)


def engine_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("gpen-")]


# --------------------------------------------------------------------------- layout and bad inputs


def test_good_and_bad_inputs_mirror_layout_and_leave_input_untouched(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    good = {
        "plain.png": photo(),
        "with space.jpg": photo(90, 120),
        "café ünï 😀.png": photo(100, 96),
        "sub/deeper/nested.jpg": photo(),
        "sub/grey.png": cv2.cvtColor(photo(), cv2.COLOR_BGR2GRAY),
    }
    for relative, image in good.items():
        write_image(source / relative, image)
    (source / "corrupt.jpg").write_bytes(RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (source / "empty.png").write_bytes(b"")
    (source / "text.jpg").write_text("not a photo at all")
    (source / "notes.txt").write_text("a note")
    (source / "sub" / "huge.png").write_bytes(png_with_bogus_header(100_000, 100_000))
    write_image(source / ".hidden.jpg", photo())
    (source / ".old.png.0badc0de.partial").write_bytes(b"left by someone")
    before = tree_digest(source)

    outcome = run_folder(make_restorer(), source, out)

    assert tree_digest(source) == before
    entries = by_input(outcome.entries)
    assert set(entries) == {Path(r).name for r in good} | {
        "corrupt.jpg",
        "empty.png",
        "text.jpg",
        "notes.txt",
        "huge.png",
    }
    assert [entry.input for entry in outcome.entries] == sorted(e.input for e in outcome.entries)
    for relative, image in good.items():
        entry = entries[Path(relative).name]
        assert entry.status == "ok", entry.error
        assert entry.output == str(out / relative)
        assert entry.faces.count == 1
        restored = read_image(out / relative)
        assert restored.shape == image.shape  # grey stays grey, size kept
        # An identity generator gives the photo back, up to two bilinear warps and JPEG.
        assert np.abs(restored.astype(float) - image).mean() < 6
    for name, reason in [
        ("corrupt.jpg", "not an image or corrupt"),
        ("empty.png", "empty file"),
        ("text.jpg", "not an image or corrupt"),
        ("huge.png", "refusing to decode"),
    ]:
        assert entries[name].status == "failed"
        assert name in entries[name].error and reason in entries[name].error
        assert entries[name].output is None
    assert entries["notes.txt"].status == "skipped"
    assert "not an image" in entries["notes.txt"].error
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(good)


def test_output_folder_inside_input_is_left_out_of_the_scan(tmp_path):
    source = tmp_path / "in"
    for name in ("a.png", "b/c.png"):
        write_image(source / name, photo())
    out = source / "restored"
    before = tree_digest(source)

    first = run_folder(make_restorer(), source, out)
    second = run_folder(make_restorer(), source, out)

    assert [e.status for e in first.entries] == ["ok", "ok"]
    assert [(e.status, e.error) for e in second.entries] == [("skipped", ALREADY_DONE)] * 2
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png", "b/c.png"]
    after = {k: v for k, v in tree_digest(source).items() if not k.startswith("restored")}
    assert after == before


@pytest.mark.parametrize(
    ("output", "report", "message"),
    [
        ("in", None, "is the input folder"),
        ("in/.", None, "is the input folder"),
        (".", None, "inside the output folder"),
        ("out", "in/report.json", "inside the input folder"),
        ("in/file.png", None, "not a folder"),
    ],
)
def test_layout_refuses_folders_that_would_write_into_the_input(tmp_path, output, report, message):
    write_image(tmp_path / "in" / "file.png", photo())
    with pytest.raises(GpenError, match=message):
        plan_layout(tmp_path / "in", tmp_path / output, tmp_path / report if report else None)


def test_missing_input_folder_is_refused(tmp_path):
    with pytest.raises(GpenError, match="no such folder"):
        plan_layout(tmp_path / "nothing", tmp_path / "out")
    write_image(tmp_path / "one.png", photo())
    with pytest.raises(GpenError, match="gpen restore"):
        plan_layout(tmp_path / "one.png", tmp_path / "out")


def test_glob_recursion_extension_and_clashing_outputs(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    for name in ("x.jpg", "x.png", "y.JPG", "deep/z.jpg"):
        write_image(source / name, photo())

    flat = run_folder(make_restorer(), source, out, pattern="*.jpg", recursive=False)
    assert {Path(e.input).name: e.status for e in flat.entries} == {"x.jpg": "ok", "y.JPG": "ok"}

    as_png = run_folder(make_restorer(), source, tmp_path / "png", ext="png")
    entries = by_input(as_png.entries)
    assert entries["x.jpg"].status == "ok" and entries["x.jpg"].output.endswith("x.png")
    assert entries["x.png"].status == "failed"
    assert "would both be written to" in entries["x.png"].error
    assert (tmp_path / "png" / "deep" / "z.png").is_file()


def test_aligned_photos_are_batched_and_written_at_model_size(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    crops = {f"face{i}.png": photo(96, 96) for i in range(3)}
    for name, image in crops.items():
        write_image(source / name, image)
    model = SpyModel()
    restorer = make_restorer(model, aligned=True)

    outcome = run_folder(restorer, source, out, gather_seconds=5.0)

    assert [len(batch) for batch in model.batches] == [3]
    assert [e.status for e in outcome.entries] == ["ok"] * 3 and outcome.faces == 3
    for name, image in crops.items():
        # Resized bilinearly as the official code; the 8-bit conversion truncates, so the
        # identity model gives each level back or one below it.
        difference = cv2.resize(image, (SIZE, SIZE)).astype(int) - read_image(out / name)
        assert difference.min() >= 0 and difference.max() <= 1


# --------------------------------------------------------------------------- batching


def test_faces_of_different_photos_share_a_forward_batch(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    colours = [(40, 60, 200), (200, 60, 40), (60, 200, 40)]  # BGR, one per photo
    for index, colour in enumerate(colours):
        write_image(source / f"p{index}.png", np.full((200, 200, 3), colour, np.uint8))
    model = SpyModel()
    detector = PlacedFaces([(10, 10), (120, 10), (60, 120)])
    restorer = make_restorer(model, batch_size=4, detector=detector)

    outcome = run_folder(restorer, source, out, workers=1, gather_seconds=5.0)

    assert [len(batch) for batch in model.batches] == [4, 4, 1]

    def photo_of(rgb_mean: tuple[float, ...]) -> int:
        bgr = [round((value + 1) * 127.5) for value in reversed(rgb_mean)]
        return colours.index(tuple(bgr))

    photos_per_batch = [{photo_of(face) for face in batch} for batch in model.batches]
    assert photos_per_batch == [{0, 1}, {1, 2}, {2}]
    assert [e.faces.count for e in outcome.entries] == [3, 3, 3] and outcome.faces == 9
    for index, colour in enumerate(colours):
        assert np.abs(read_image(out / f"p{index}.png").astype(int) - colour).max() <= 1


def test_gatherer_completes_photos_in_order_and_fails_only_those_hit():
    gatherer: CropGatherer[str] = CropGatherer(batch_size=3)
    face = np.zeros((2, 2, 3), np.uint8)
    assert gatherer.add("none", []) and gatherer.add("none", [])[0].restored == []
    assert gatherer.add("a", [face, face]) == [] and gatherer.add("b", [face + 1, face + 2]) == []
    first = gatherer.take()
    assert len(first) == 3 and not gatherer.full and gatherer.pending == 1
    done = gatherer.deliver(first, [c + 10 for c in first.crops])
    assert [c.item for c in done] == ["a"] and [f[0, 0, 0] for f in done[0].restored] == [10, 10]
    second = gatherer.take()
    failed = gatherer.deliver(second, None, RuntimeError("out of memory"))
    assert [(c.item, str(c.error)) for c in failed] == [("b", "out of memory")]
    assert gatherer.take() is None


def test_a_failed_forward_fails_its_photos_only(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(3):
        write_image(source / f"p{index}.png", photo())
    restorer = make_restorer(SpyModel(fail_calls=(1,)), batch_size=1)

    outcome = run_folder(restorer, source, out, workers=1)

    statuses = [e.status for e in outcome.entries]
    assert statuses == ["ok", "failed", "ok"]
    assert "simulated device failure" in outcome.entries[1].error
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p2.png"]


# --------------------------------------------------------------------------- stop and resume


def test_stop_finishes_in_flight_photos_and_a_rerun_completes_the_rest(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    images = {f"p{index:02d}.png": photo() for index in range(16)}
    for name, image in images.items():
        write_image(source / name, image)
    stop = threading.Event()

    def stop_after_first(event) -> None:
        if event.stage == "done":
            stop.set()

    first = run_folder(
        make_restorer(batch_size=1), source, out, stop=stop, on_event=stop_after_first, workers=1
    )

    assert first.interrupted
    done = {Path(e.input).name for e in first.entries if e.status == "ok"}
    assert 1 <= len(done) < len(images) and len(first.entries) == len(done)
    assert {p.name for p in out.iterdir()} == done
    assert partial_files(out) == []
    for name in done:
        assert read_image(out / name).shape == images[name].shape

    second = run_folder(make_restorer(batch_size=1), source, out)

    assert not second.interrupted
    statuses = {Path(e.input).name: (e.status, e.error) for e in second.entries}
    assert statuses == {
        name: (("skipped", ALREADY_DONE) if name in done else ("ok", None)) for name in images
    }
    assert {e.reason for e in second.entries if e.status == "skipped"} == {"already_done"}
    assert {p.name for p in out.iterdir()} == set(images)

    again = run_folder(make_restorer(batch_size=1), source, out, overwrite=True)
    assert [e.status for e in again.entries] == ["ok"] * len(images)


def test_progress_tells_faces_found_and_restored_per_photo_and_counts_faces_once(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(3):
        write_image(source / f"p{index}.png", np.full((200, 200, 3), 90, np.uint8))
    (source / "notes.txt").write_text("not a photo")
    detector = PlacedFaces([(10, 10), (120, 10), (60, 120)])
    events = []

    outcome = run_folder(
        make_restorer(batch_size=4, detector=detector), source, out, on_event=events.append
    )

    assert [e.status for e in outcome.entries] == ["skipped", "ok", "ok", "ok"]
    assert [e.stage for e in events if e.source.endswith("notes.txt")] == ["done"]
    for index in range(3):
        steps = [e for e in events if e.source == str(source / f"p{index}.png")]
        assert [e.stage for e in steps if e.stage != "restored"] == ["started", "found", "done"]
        assert steps[0].stage == "started" and steps[-1].stage == "done"
        assert steps[1].faces_found == 3
        restored = [e.faces_restored for e in steps if e.stage == "restored"]
        assert restored == sorted(restored) and restored[-1] == 3
    done = [e for e in events if e.stage == "done"]
    assert [e.photos_done for e in done] == [1, 2, 3, 4]
    assert sorted(e.faces_done for e in done)[-1] == outcome.faces == 9


def test_photos_in_memory_stay_bounded_when_the_generator_is_slow(tmp_path, monkeypatch):
    """The generator as slow as can be: each batch waits until the decoders have filled all
    the room they are given (2 x workers photos ahead of it, besides its own batch), or until
    every photo left is decoded; however many photos, no more than that are in memory."""
    from gpen_cli.batch import steps

    photos, workers, batch_size = 40, 2, 2
    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(photos):
        write_image(source / f"p{index:02d}.png", photo())  # one face each
    now, peak, changed = Counter(), Counter(), threading.Condition()

    def count(**changes: int) -> None:
        with changed:
            now.update(changes)
            for key in changes:
                peak[key] = max(peak[key], now[key])
            changed.notify_all()

    def filled() -> bool:
        return now["decoded"] >= min(2 * workers + batch_size, photos - now["finished"])

    class CountingModel(SpyModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            count(ahead=-len(x))
            return super().forward(x)

    real_prepare, real_finish = steps.prepare, steps.finish

    def prepare(*args):
        item = real_prepare(*args)
        count(decoded=1, ahead=1)
        return item

    def finish(*args):
        entry = real_finish(*args)
        count(decoded=-1, finished=1)
        return entry

    monkeypatch.setattr(steps, "prepare", prepare)
    monkeypatch.setattr(steps, "finish", finish)
    restorer = make_restorer(CountingModel(), batch_size=batch_size)
    generator = restorer.forward

    def stalled_generator(crops):  # waits before taking its turn at torch (detection's too)
        with changed:
            assert changed.wait_for(filled, timeout=60), f"decoding stopped at {now}"
        return generator(crops)

    restorer.forward = stalled_generator

    outcome = run_folder(restorer, source, out, workers=workers)

    assert [e.status for e in outcome.entries] == ["ok"] * photos, outcome.entries[0].error
    assert 2 <= peak["decoded"] <= 4 * workers + batch_size  # not the whole folder
    # Waiting for the generator: 2 x workers, and the faces gathered for its next batch.
    assert peak["ahead"] <= 2 * workers + batch_size


def test_a_failure_of_the_machinery_aborts_the_run_and_is_raised_in_the_caller(
    tmp_path, monkeypatch
):
    from gpen_cli.batch import steps

    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(12):
        write_image(source / f"p{index:02d}.png", photo())

    def broken_finish(*args):
        raise RuntimeError("a bug in the finish step")

    monkeypatch.setattr(steps, "finish", broken_finish)
    with pytest.raises(RuntimeError, match="a bug in the finish step"):
        run_folder(make_restorer(), source, out)
    assert engine_threads() == []
    monkeypatch.undo()

    def broken_hook(event):
        raise KeyError("a bug in the caller's hook")

    with pytest.raises(KeyError, match="a bug in the caller's hook"):
        run_folder(make_restorer(), source, out, on_event=broken_hook)
    assert engine_threads() == []


def test_a_stop_after_the_last_photo_went_through_the_generator_leaves_nothing_undone(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    for index in range(2):
        write_image(source / f"p{index}.png", photo())
    stop = threading.Event()

    def stop_when_the_last_is_restored(event) -> None:
        if event.stage == "restored" and event.source.endswith("p1.png"):
            stop.set()

    outcome = run_folder(
        make_restorer(), source, out, stop=stop, on_event=stop_when_the_last_is_restored
    )

    assert stop.is_set() and not outcome.interrupted  # nothing for a rerun to do
    assert [e.status for e in outcome.entries] == ["ok", "ok"]


def test_stale_partial_files_in_the_output_tree_are_removed_first(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    write_image(source / "sub" / "a.png", photo())
    (source / ".a.png.1234abcd.partial").write_bytes(b"input side: not ours to remove")
    stale = [out / "sub" / ".a.png.deadbeef.partial", out / ".report.json.x1.partial"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")

    outcome = run_folder(make_restorer(), source, out)

    assert [e.status for e in outcome.entries] == ["ok"]
    assert partial_files(out) == []
    assert (source / ".a.png.1234abcd.partial").exists()


def test_first_signal_sets_stop_and_handlers_are_restored():
    import os
    import signal

    stop = threading.Event()
    calls = []
    previous = signal.getsignal(signal.SIGTERM)
    with graceful_stop(stop, on_first=lambda signum: calls.append(signum.name)):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert calls == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) is previous


# --------------------------------------------------------------------------- the CLI


def invoke(*args: str):
    return CliRunner().invoke(app, ["batch", *map(str, args)])


@pytest.mark.slow
def test_cli_restores_the_test_photos_with_the_default_detector(
    tmp_path, tiny_checkpoint, pipeline_weights_dir
):
    weights = pipeline_weights_dir
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    photo_as("portrait", source / "portrait.jpg")
    photo_as("group", source / "nested" / "group.jpg")

    result = invoke(
        source, "-o", out, "--model", tiny_checkpoint, "--weights-dir", weights,
        "--detector", "retinaface-mobile", "--device", "cpu", "--report", report,
        "--mask", "rect",  # the detector is the point here; ParseNet would triple the time
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    payload = json.loads(report.read_text())
    assert payload["command"] == "batch" and payload["interrupted"] is False
    assert [r["status"] for r in payload["results"]] == ["ok", "ok"]
    assert all(r["faces"]["count"] >= 1 for r in payload["results"])
    for relative in ("portrait.jpg", "nested/group.jpg"):
        assert read_image(out / relative).shape == read_image(source / relative).shape
    assert "faces/s" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "missing"),
    [("GPEN-BFR-256", "GPEN-BFR-256.pth"), (None, "detection_mobilenet0.25_Final.pth")],
)
def test_cli_missing_weights_exit_2_before_anything_is_written(
    tmp_path, monkeypatch, tiny_checkpoint, model, missing
):
    monkeypatch.setenv("GPEN_WEIGHTS_BASE_URL", (tmp_path / "no-mirror").as_uri())
    write_image(tmp_path / "in" / "a.png", photo())
    empty = tmp_path / "weights"
    empty.mkdir()

    result = invoke(
        tmp_path / "in", "-o", tmp_path / "out", "--model", model or tiny_checkpoint,
        "--weights-dir", empty, "--detector", "retinaface-mobile", "--device", "cpu",
        "--report", tmp_path / "report.json",
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert f"{missing} not found" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.json").exists()
    assert list(empty.iterdir()) == []


def test_cli_exit_codes_for_failures_and_usage_errors(tmp_path, tiny_checkpoint):
    source = tmp_path / "in"
    write_image(source / "good.png", photo(80, 80))
    (source / "bad.png").write_bytes(b"\x89PNG broken")
    common = ["--model", tiny_checkpoint, "--aligned", "--device", "cpu", "-q"]

    failed = invoke(source, "-o", tmp_path / "out", *common, "--report", tmp_path / "r.json")
    assert failed.exit_code == 1, failed.output
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(Path(r["input"]).name, r["status"]) for r in results] == [
        ("bad.png", "failed"),
        ("good.png", "ok"),
    ]
    assert read_image(tmp_path / "out" / "good.png").shape == (SIZE, SIZE, 3)

    (source / "bad.png").unlink()
    assert invoke(source, "-o", tmp_path / "out", *common).exit_code == 0
    assert invoke(source, "-o", source, *common).exit_code == 2
    assert invoke(source, "-o", tmp_path / "x", *common, "--ext", "gif").exit_code == 2


_EXIT_WHILE_WAITING_FOR_INPUT = """
import queue, sys, threading
from types import SimpleNamespace
from gpen_cli.batch import GivenItems, PhotoJob, ThreadEngine

class Tasks(queue.Queue):  # a Ray actor's input: it never ends
    asked = threading.Event()

    def get(self, *args, **kwargs):
        self.asked.set()
        return super().get(*args, **kwargs)

tasks = Tasks()
engine = ThreadEngine(SimpleNamespace(batch_size=1, aligned=False))
job = PhotoJob(GivenItems(iter(tasks.get, None)))
threading.Thread(target=engine.run, args=(job,), daemon=True).start()
assert tasks.asked.wait(timeout=30), "the engine never asked for a photo"
sys.exit(3)
"""


@pytest.mark.slow
def test_a_process_exits_while_its_engine_waits_for_input():
    """A Ray actor's engine waits for photos until its process ends; the process must then
    exit (a pool thread waiting for faces held actors at exit, orphaned with their models)."""
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WHILE_WAITING_FOR_INPUT], capture_output=True, timeout=60
    )
    assert done.returncode == 3, done.stderr


class BatchMixing(nn.Module):
    """Each face's output depends on the faces it shares a batch with (as a CPU kernel's
    rounding can): outputs are equal only when the batches are."""

    size = SIZE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 0.2 * x.mean(dim=0, keepdim=True)).clamp(-1, 1)


class CountedFaces(PlacedFaces):
    """Finds as many faces as the photo's first pixel says."""

    spots = [(10, 10), (120, 10), (60, 120)]

    def detect(self, image: np.ndarray) -> list[Face]:
        self.corners = self.spots[: int(image[0, 0, 0]) // 50]
        return super().detect(image)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_the_same_photos_give_the_same_bytes_whatever_the_workers(
    tmp_path, monkeypatch, batch_size
):
    """With 3 workers the first photo's preparation ends only once the third one's has: the
    photos reach the generator out of their order, and their batches are the same all the same."""
    from gpen_cli.batch import steps

    source = tmp_path / "in"
    counts = [1, 2, 3, 1, 2]
    for index, count in enumerate(counts):
        image = np.full((200, 200, 3), (50 * count, 30 * index, 90), np.uint8)
        image[40:160, 40:160] = (20 + 40 * index, 200 - 30 * index, 120)
        write_image(source / f"p{index}.png", image)
    real_prepare, third_prepared = steps.prepare, threading.Event()

    def first_ends_after_the_third(restorer, task):
        item = real_prepare(restorer, task)
        if task.source.name == "p2.png":
            third_prepared.set()
        elif task.source.name == "p0.png":
            assert third_prepared.wait(timeout=60), "the third photo was never prepared"
        return item

    outputs = []
    for workers in (1, 3):
        if workers > 1:
            monkeypatch.setattr(steps, "prepare", first_ends_after_the_third)
        restorer = make_restorer(BatchMixing(), batch_size=batch_size, detector=CountedFaces())
        out = tmp_path / f"out{workers}"
        outcome = run_folder(restorer, source, out, workers=workers)
        assert [e.status for e in outcome.entries] == ["ok"] * 5
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert third_prepared.is_set()
    assert outputs[0] == outputs[1]


def test_cli_workers_are_capped_by_memory_in_one_line(tmp_path, tiny_checkpoint, monkeypatch):
    from gpen_cli.core import memory

    # Half of 3 GB holds one worker's photos at the input limit (1.7 GB) and no more.
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 << 30)
    source = tmp_path / "in"
    write_image(source / "a.png", photo(80, 80))
    result = invoke(
        source, "-o", tmp_path / "out", "--model", tiny_checkpoint, "--aligned",
        "--device", "cpu", "-j", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1000 workers capped to 1:" in result.output, result.output
    assert (tmp_path / "out" / "a.png").is_file()
