"""`gpen batch --engine ray`: the thread engine's bytes and report, resume, a killed actor.

One local Ray with 2 CPUs serves the tests that run a job (`ray_cluster`), started by the first
of them. Photos go through the real RetinaFace MobileNet where its weights are at hand (else
the official detector's faces, replayed in every process: tests/replay_site), a random GPEN-64
and the narrow ParseNet (conftest.LIGHT_PARSENET); `--batch-size 1`, because on a
multi-threaded CPU the generator's float sums depend on which faces share a batch, and the
thread engine's batches depend on timing (README: "Same bytes").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import photo_as, process_environment
from typer.testing import CliRunner

from gpen_cli.batch import FolderScan, PhotoJob, ThreadEngine, plan_layout
from gpen_cli.batch.scan import ALREADY_DONE
from gpen_cli.cli import app
from gpen_cli.core.config import MaskKind, RestoreConfig
from gpen_cli.io.atomic import is_partial_file
from gpen_cli.pipeline.restorer import FaceRestorer

pytestmark = pytest.mark.ray

ray = pytest.importorskip(
    "ray.data", reason="the ray extra is not installed (pip install -e '.[test,ray]')"
)
from gpen_cli.batch.ray_engine import RayEngine, RayOptions  # noqa: E402

ACTOR_TITLE = "ray::MapWorker(MapBatches(GpenActor))"


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for the tests that run a job, started when the first of them asks.

    Module-scoped, not session-scoped: `ray_session` uses a Ray already started in its
    process, so one left running would change what later modules' tests see (an --address
    nobody answers at would be ignored). Its workers start with `process_environment`'s
    PYTHONPATH, so they find the faces this process finds.
    """
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", process_environment()["PYTHONPATH"])
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def settings(tiny_checkpoint, light_pipeline_weights_dir) -> RestoreConfig:
    return RestoreConfig(
        model=str(tiny_checkpoint),
        detector="retinaface-mobile",
        weights_dir=light_pipeline_weights_dir,
        device="cpu",
        batch_size=1,
        mask=MaskKind.RECT,
    )


def make_folder(root: Path, copies: int = 1) -> Path:
    """Faces (one and several, nested), a photo without a face, and files that are no photo."""
    (root / "sub").mkdir(parents=True)
    for index in range(copies):
        photo_as("portrait", root / f"portrait{index}.jpg")
        photo_as("group", root / "sub" / f"group{index}.jpg")
    gradient = np.linspace(0, 255, 80 * 60, dtype=np.float32).reshape(60, 80).astype(np.uint8)
    cv2.imwrite(str(root / "no face.png"), gradient)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "notes.txt").write_text("not a photo")
    return root


def run_ray(settings, source, out, *, stop=None, per_call=2):
    options = RayOptions(photos_per_call=per_call, torch_threads=2)
    job = PhotoJob(FolderScan(plan_layout(source, out)))
    return RayEngine(settings, options).run(job, stop)


def run_threads(settings, source, out):
    import torch

    torch.set_num_threads(2)  # what the Ray workers use
    job = PhotoJob(FolderScan(plan_layout(source, out)))
    return ThreadEngine(FaceRestorer(config=settings), workers=2).run(job)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def comparable(entries) -> list[tuple]:
    """What a report says of each photo, less the time it took and the output folder."""
    return [
        (e.input, e.output and Path(e.output).name, e.status, e.error, e.faces, e.note)
        for e in entries
    ]


def test_same_bytes_and_entries_as_the_thread_engine(tmp_path, settings, ray_cluster):
    """With the parsing mask, the default: every model runs in the actor, as in the threads."""
    settings = dataclasses.replace(settings, mask=MaskKind.PARSING)
    source = make_folder(tmp_path / "in")

    by_ray = run_ray(settings, source, tmp_path / "ray")
    by_threads = run_threads(settings, source, tmp_path / "threads")

    assert tree(tmp_path / "ray") == tree(tmp_path / "threads")
    assert comparable(by_ray.entries) == comparable(by_threads.entries)
    statuses = {Path(e.input).name: e.status for e in by_ray.entries}
    assert statuses == {
        "portrait0.jpg": "ok",
        "group0.jpg": "ok",
        "no face.png": "no_face",
        "corrupt.jpg": "failed",
        "notes.txt": "skipped",
    }
    assert by_ray.faces == by_threads.faces >= 2 and not by_ray.interrupted


def test_ctrl_c_stops_the_cli_and_a_second_run_does_the_rest(tmp_path, settings, ray_cluster):
    """A terminal's Ctrl-C reaches the whole process group, Ray's own processes included."""
    copies = 30  # enough that the job is still running when Ctrl-C comes, on a busy machine too
    source = make_folder(tmp_path / "in", copies=copies)
    out, report = tmp_path / "out", tmp_path / "report.json"
    command = [
        sys.executable, "-m", "gpen_cli", "batch", str(source), "-o", str(out), "-q",
        "--report", str(report), "--model", settings.model, "--detector", "retinaface-mobile",
        "--weights-dir", str(settings.weights_dir), "--device", "cpu", "--batch-size", "1",
        "--mask", "rect", "--engine", "ray", "--workers", "2",
    ]  # fmt: skip
    run = subprocess.Popen(
        command,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
        env=process_environment(),
    )
    deadline = time.monotonic() + 120

    def writing() -> bool:  # a photo being written (its hidden temporary file) or written
        return any(p.suffix == ".jpg" or is_partial_file(p) for p in out.rglob("*"))

    while not writing() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)
    _, stderr = run.communicate(timeout=120)

    assert run.returncode == 130, stderr
    first = json.loads(report.read_text())
    assert first["interrupted"] is True
    finals = [p for p in out.rglob("*") if p.is_file() and not is_partial_file(p)]
    assert finals and all(cv2.imread(str(p)) is not None for p in finals if p.suffix == ".jpg")
    assert all(Path(r["output"]).is_file() for r in first["results"] if r["status"] == "ok")
    reported = {r["output"] for r in first["results"] if r["output"]}
    assert {str(p) for p in finals} <= reported  # every output on disk is in the report
    second = run_ray(settings, source, out)
    done = {e.output for e in second.entries if e.error == ALREADY_DONE}
    assert done >= {r["output"] for r in first["results"] if r["status"] == "ok"}
    redone = [e for e in second.entries if e.status in ("ok", "no_face")]
    assert len(redone) + len(done) == 2 * copies + 1  # the photos with faces, the one without
    assert not any(is_partial_file(path) for path in out.rglob("*"))
    assert len(list(out.rglob("*.jpg"))) == 2 * copies


def actor_pids() -> list[int]:
    """The processes of the model actors, found by the title Ray gives them."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                ACTOR_TITLE.encode()
            ):
                pids.append(int(entry.name))
        except OSError:  # a process that ended meanwhile
            continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the actor's process in /proc")
def test_an_actor_killed_after_writing_a_photo_is_restarted_and_the_photo_reported_ok(
    tmp_path, settings, ray_cluster
):
    """All photos go in one call; the actor dies once it wrote one of them, before the call
    returned. Ray runs the call again on a new actor, which finds that photo's output there."""
    source = make_folder(tmp_path / "in", copies=3)
    out = tmp_path / "ray"
    killed: list[list[Path]] = []
    finished = threading.Event()

    def kill_once_one_is_written() -> None:
        while not finished.is_set():
            written = list(out.rglob("*.jpg"))
            if written and (pids := actor_pids()):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(written)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_once_one_is_written)
    watcher.start()
    try:
        outcome = run_ray(settings, source, out, per_call=8)
    finally:
        finished.set()
        watcher.join()

    assert killed, "no model actor was found to kill"
    statuses = {Path(e.input).name: (e.status, e.error) for e in outcome.entries}
    assert [status for status, _ in statuses.values()].count("ok") == 6, statuses
    reported = {e.output for e in outcome.entries if e.status == "ok"}
    assert {str(path) for path in killed[0]} <= reported
    run_threads(settings, source, tmp_path / "threads")
    assert tree(out) == tree(tmp_path / "threads")


def test_the_cli_writes_the_same_report_and_exit_code(tmp_path, settings, ray_cluster):
    """...and with the Ray engine no model is built in the driver (the actors build theirs)."""
    source = make_folder(tmp_path / "in")
    common = [
        "batch", str(source), "--model", settings.model, "--detector", "retinaface-mobile",
        "--weights-dir", str(settings.weights_dir), "--device", "cpu", "--batch-size", "1",
        "--mask", "rect", "-q",
    ]  # fmt: skip
    reports = {}
    for engine in ("ray", "thread"):
        with pytest.MonkeyPatch.context() as patch:
            if engine == "ray":
                patch.setattr(FaceRestorer, "__init__", _built_in_the_driver)
            result = CliRunner().invoke(
                app,
                [*common, "-o", str(tmp_path / engine), "--engine", engine,
                 "--report", str(tmp_path / f"{engine}.json")],
            )  # fmt: skip
        assert result.exit_code == 1, result.output  # corrupt.jpg failed
        reports[engine] = json.loads((tmp_path / f"{engine}.json").read_text())

    def without_times(report: dict) -> dict:
        timings = ("seconds", "faces_per_second", "output_dir")
        kept = {k: v for k, v in report.items() if k not in (*timings, "results")}
        results = [{k: v for k, v in r.items() if k != "seconds"} for r in report["results"]]
        return {**kept, "results": [json.dumps(r, sort_keys=True) for r in results]}

    ray_report, thread_report = without_times(reports["ray"]), without_times(reports["thread"])
    for report in (ray_report, thread_report):  # outputs differ by their folder only
        report["results"] = [
            r.replace(str(tmp_path / "ray"), "OUT").replace(str(tmp_path / "thread"), "OUT")
            for r in report["results"]
        ]
    assert ray_report == thread_report
    summary = reports["ray"]["summary"]
    assert summary == {
        "ok": 2, "no_face": 1, "skipped": 1, "failed": 1, "faces": summary["faces"],
        "review": 0, "lowest_identity": None,  # nothing scored
    }  # fmt: skip


def _built_in_the_driver(*args, **kwargs):
    raise AssertionError("a FaceRestorer was built in the driver")


def test_a_broken_generator_is_refused_by_the_driver_before_ray_starts(
    tmp_path, settings, monkeypatch
):
    """The driver checks the weight files without building models; a generator with NaN
    values stops the job at once, exit 2, one line naming the file."""
    import torch

    state = torch.load(settings.model, weights_only=True)
    first = next(key for key, tensor in state.items() if tensor.is_floating_point())
    state[first][...] = float("nan")
    broken = tmp_path / "GPEN-nan.pth"
    torch.save(state, broken)
    monkeypatch.setattr(FaceRestorer, "__init__", _built_in_the_driver)
    monkeypatch.setattr("gpen_cli.batch.ray_engine.ray_session", _built_in_the_driver)
    photo_as("portrait", tmp_path / "in" / "portrait_small.jpg")
    result = CliRunner().invoke(
        app,
        ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--engine", "ray",
         "--model", str(broken), "--weights-dir", str(settings.weights_dir),
         "--detector", "retinaface-mobile", "--mask", "rect", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"--model: {broken}: NaN or infinite values in {first}" in result.output
    assert not (tmp_path / "out").exists()


def test_ray_options_are_refused_without_the_ray_engine(tmp_path):
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(
        app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model-actors", "2"]
    )
    assert result.exit_code == 2 and "need --engine ray" in result.output


def test_an_address_nobody_answers_at_is_one_line_at_once():
    from gpen_cli.batch.ray_engine import check_reachable
    from gpen_cli.core.errors import GpenError

    with pytest.raises(GpenError, match="no Ray cluster answers there"):
        check_reachable("127.0.0.1:1", timeout=2)
    check_reachable("auto")  # left to Ray


def test_a_cluster_wanting_a_token_says_how_to_present_it():
    from ray.exceptions import AuthenticationError

    from gpen_cli.batch.ray_engine import start_error

    try:
        try:
            raise AuthenticationError("Authentication token is missing or incorrect")
        except AuthenticationError as auth:
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from auth
    except ConnectionError as exc:
        error = start_error("--address 10.0.0.1:6379", exc)
    assert str(error) == (
        "--address 10.0.0.1:6379: cannot start Ray: Failed to connect to Ray cluster at "
        "10.0.0.1:6379; the cluster wants its token: set RAY_AUTH_MODE=token"
    )
    assert "RAY_AUTH_MODE" not in str(start_error("a local Ray", RuntimeError("no room")))


def test_outputs_written_as_the_job_stops_are_in_the_entries(tmp_path, monkeypatch):
    """Ray cancels the calls in flight at a stop: an output an actor had already published
    is reported, though its call's entry never came back."""
    from gpen_cli.batch import ray_engine
    from gpen_cli.pipeline.report import ReportEntry

    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(source / name), np.zeros((16, 16, 3), np.uint8))

    def stopped_job(tasks, settings, options, ray_options, stop, record):
        for task in tasks[:2]:  # two published, only the first one's entry delivered
            task.output.parent.mkdir(parents=True, exist_ok=True)
            task.output.write_bytes(task.source.read_bytes())
        record(ReportEntry(str(tasks[0].source), str(tasks[0].output), "ok"))
        stop.set()

    monkeypatch.setattr(ray_engine, "run_job", stopped_job)
    out = tmp_path / "out"
    job = PhotoJob(FolderScan(plan_layout(source, out)))
    outcome = RayEngine(RestoreConfig(mask="rect"), RayOptions()).run(job)
    assert outcome.interrupted
    by_input = {Path(e.input).name: e for e in outcome.entries}
    assert sorted(by_input) == ["a.png", "b.png"]  # c.png was never written: left for a rerun
    late = by_input["b.png"]
    assert (late.status, late.output) == ("ok", str(out / "b.png"))
    assert "written as the job stopped" in late.note
    written = {str(p) for p in out.iterdir()}
    assert written == {e.output for e in outcome.entries}
