"""`gpen batch` as a real process: stopped by SIGINT, killed by SIGKILL, then run again.

Each run is the same command; after the restart every photo must be restored, valid, and
nothing else (no temporary files) may be in the output tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from gpen_cli.io.atomic import is_partial_file

REPO = Path(__file__).resolve().parents[1]
PHOTOS = 40
SIZE = 64

pytestmark = pytest.mark.slow


@pytest.fixture
def job(tmp_path) -> dict[str, Path]:
    """A folder of aligned face crops (nested), a random GPEN-64 checkpoint, and paths."""
    from gpen_cli.models import build_gpen

    torch.manual_seed(0)
    checkpoint = tmp_path / "gpen64.pth"
    torch.save(build_gpen(SIZE, 1, 0.125).state_dict(), checkpoint)
    rng = np.random.default_rng(5)
    source = tmp_path / "in"
    for index in range(PHOTOS):
        path = source / f"group {index % 3}" / f"face_{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (192, 192, 3), dtype=np.uint8))
    return {
        "source": source,
        "out": tmp_path / "out",
        "report": tmp_path / "report.json",
        "checkpoint": checkpoint,
        "log": tmp_path / "log.txt",
    }


def start(job: dict[str, Path]) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gpen_cli", "batch", str(job["source"]), "-o", str(job["out"]),
        "--model", str(job["checkpoint"]), "--aligned", "--device", "cpu",
        "--batch-size", "1", "--workers", "1", "--report", str(job["report"]),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with open(job["log"], "w") as log:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_first_output(process: subprocess.Popen, out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.is_dir() and any(not path.name.startswith(".") for path in out.rglob("*.png")):
            return
        assert process.poll() is None, "the batch ended before writing anything"
        time.sleep(0.005)
    process.kill()
    pytest.fail("no output appeared in time")


def expected_outputs(job: dict[str, Path]) -> set[Path]:
    return {job["out"] / path.relative_to(job["source"]) for path in job["source"].rglob("*.png")}


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def assert_valid_outputs(paths: set[Path]) -> None:
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == (SIZE, SIZE, 3), path


def rerun_and_check_complete(job: dict[str, Path], done_before: set[Path]) -> dict:
    """Run again; everything is there, and the report accounts for every photo."""
    process = start(job)
    assert process.wait(timeout=120) == 0, job["log"].read_text()
    outputs = expected_outputs(job)
    assert files_under(job["out"]) == outputs  # everything, and no stray or temporary file
    assert_valid_outputs(outputs)
    report = json.loads(job["report"].read_text())
    results = report["results"]
    ok = {Path(r["output"]) for r in results if r["status"] == "ok"}
    already = {Path(r["output"]) for r in results if r["reason"] == "already_done"}
    assert ok | already == outputs and not ok & already
    # This run restored only the rest (one aligned face a photo).
    assert report["faces_restored"] == len(outputs - done_before)
    return report


def test_sigint_finishes_in_flight_writes_report_exits_130_and_restart_completes(job):
    process = start(job)
    wait_for_first_output(process, job["out"])
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, job["log"].read_text()

    report = json.loads(job["report"].read_text())
    assert report["interrupted"] is True
    done = files_under(job["out"])
    assert not any(is_partial_file(path) for path in done)
    assert 1 <= len(done) < PHOTOS
    assert_valid_outputs(done)
    assert {Path(r["output"]) for r in report["results"] if r["status"] == "ok"} == done

    resumed = rerun_and_check_complete(job, done)
    # The stopped run's report is carried over: the resumed one describes the whole job.
    assert resumed["summary"]["ok"] == len(expected_outputs(job))
    assert resumed["summary"]["skipped"] == 0


def test_sigkill_mid_run_then_restart_completes_and_cleans_temporary_files(job):
    process = start(job)
    wait_for_first_output(process, job["out"])
    process.kill()
    process.wait(timeout=30)
    # What a kill during a write leaves behind (the write itself is too quick to catch).
    stale = job["out"] / "group 1" / ".face_01.png.0123abcd.partial"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a png")
    done = {path for path in files_under(job["out"]) if not is_partial_file(path)}
    assert_valid_outputs(done)

    rerun_and_check_complete(job, done)


def test_a_second_signal_stops_the_process_at_once():
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from gpen_cli.batch.signals import graceful_stop

        stop = threading.Event()
        with graceful_stop(stop, on_first=lambda signum: print("first", flush=True)):
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.wait(10)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
            print("still running", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 130, result.stderr
    assert result.stdout.split() == ["first"]
    assert time.monotonic() - started < 25
