"""Shared test helpers: where the reference data lives, and skips when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Each xdist worker computes with one thread (before torch is imported here, and in the `gpen`
# processes a test starts): two workers with two threads each would take turns on 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import gpen_cli  # noqa: E402, F401  (first, as the CLI imports it: bounds OpenCV's decoder before cv2 loads)

REPO = Path(__file__).resolve().parents[1]

# After gpen_cli, as it imports torch (through seeded).
from replay import PHOTOS, ReplayDetector, load_replay_detector, photo_path  # noqa: E402, F401


def _user_weights_dir() -> Path:
    """The user's own weights folder, as `gpen` resolves it: a detector fetched there with
    `gpen weights download` lets its tests run on a clone without ../shared."""
    from gpen_cli.weights.store import resolve_weights_dir

    try:
        return resolve_weights_dir(None)
    except Exception:  # an unusable setting: only ../shared is searched
        return Path("/nonexistent")


# Read once, before any test isolates GPEN_WEIGHTS_DIR.
USER_WEIGHTS = _user_weights_dir()


def shared_dir() -> Path:
    return Path(os.environ.get("GPEN_SHARED_DIR", REPO.parent / "shared"))


def real_weights(name: str) -> Path:
    """A real pretrained weights file (registry `name`), or skip saying how to get it.

    Searched in ../shared/assets/weights, then in the user's weights folder.
    """
    from gpen_cli.weights.registry import get_spec

    filename = get_spec(name).filename
    for folder in (shared_dir() / "assets" / "weights", USER_WEIGHTS):
        if (folder / filename).is_file():
            return folder / filename
    pytest.skip(
        f"needs the real {filename}: run `gpen weights download {name}` (or set GPEN_SHARED_DIR)"
    )


def real_detectors_dir() -> Path:
    """A folder holding the real RetinaFace MobileNet and YuNet files, or skip naming them."""
    found = []
    for name in ("retinaface-mobile", "yunet"):
        try:
            found.append(real_weights(name))
        except pytest.skip.Exception:
            pass
    if len(found) == 2 and found[0].parent == found[1].parent:
        return found[0].parent
    pytest.skip(
        "needs the real detection_mobilenet0.25_Final.pth and face_detection_yunet.onnx in one "
        "folder: run `gpen weights download retinaface-mobile yunet` (or set GPEN_SHARED_DIR)"
    )


@pytest.fixture(scope="session")
def seeded_weights_dir(tmp_path_factory) -> Path:
    """The seeded GPEN-BFR-256 and ParseNet the official references were made from, saved
    as the published checkpoints are (FP16), hash-checked (tests/seeded.py)."""
    import seeded

    folder = tmp_path_factory.mktemp("seeded-weights")
    for name in ("GPEN-BFR-256.pth", "parsing_parsenet.pth"):
        seeded.write(name, folder)
    return folder


@pytest.fixture(scope="session")
def score_weights_dir(tmp_path_factory) -> Path:
    """ArcFace and hyperIQA with seeded random weights (the registry's random_init), saved
    in facexlib's layout, in FP16 to halve the writing: scores are plumbing-checked, not
    meaningful."""
    import torch

    from gpen_cli.weights.registry import MODELS

    folder = tmp_path_factory.mktemp("score-weights")
    for name in ("arcface", "hyperiqa"):
        spec = MODELS[name]
        state = spec.random_init(0).state_dict()
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                   folder / spec.filename)  # fmt: skip
    return folder


@pytest.fixture(scope="session")
def tiny_reference() -> dict:
    """A seeded GPEN-64, a seeded input, and what the official generator returns for it."""
    import numpy as np
    import seeded
    import torch

    output = torch.from_numpy(np.load(seeded.OFFICIAL / "gpen_tiny_output.npy"))
    tiny_input = seeded.tiny_input()
    assert seeded.tensor_hash(tiny_input) == seeded.stored_hashes()["tiny_input"], (
        "the seeded tiny input regenerates differently: torch's random generator changed"
    )
    return {
        "config": dict(seeded.TINY_GPEN),
        "state_dict": seeded.regenerate("GPEN-tiny-64.pth"),
        "input": tiny_input,
        "output": output,
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A GPEN-64 generator with seeded random weights, saved as the published files are."""
    import torch

    from gpen_cli.models import build_gpen

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "GPEN-random-64.pth"
    torch.save(build_gpen(64, channel_multiplier=1, narrow=0.125).state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def _isolated_weights_dir(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real weights cache."""
    monkeypatch.setenv("GPEN_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))


@pytest.fixture(scope="session")
def _user_folders(tmp_path_factory) -> Path:
    """An empty config file and empty user config and data folders for the whole run."""
    home = tmp_path_factory.mktemp("user-folders")
    (home / "config.toml").write_text("")
    return home


@pytest.fixture(autouse=True)
def _isolated_settings(_user_folders, monkeypatch):
    """No test reads the developer's config file, GPEN_<KEY> defaults or user folders: the
    built-in defaults apply unless a test sets its own."""
    from gpen_cli.core import settings

    monkeypatch.setenv(settings.CONFIG_ENV, str(_user_folders / "config.toml"))
    for key in settings.KEYS:
        if key != "weights_dir":  # set above, to a folder of the test's own
            monkeypatch.delenv(settings.env_name(key), raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_user_folders / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(_user_folders / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_user_folders / "cache"))  # kept ONNX exports


def photo_as(kind: str, path: Path) -> Path:
    """Test photo `kind` written to `path`, encoded as its suffix says (JPEG at quality 95)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    image = cv2.imread(str(photo_path(kind)), cv2.IMREAD_COLOR)
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def _has_real_detector() -> bool:
    try:
        real_weights("retinaface-mobile")
    except pytest.skip.Exception:
        return False
    return True


def pipeline_detector() -> str | ReplayDetector:
    """What to hand a restorer built outside a test (a module fixture): the real RetinaFace
    MobileNet by name where its weights are at hand, else the official faces replayed."""
    return "retinaface-mobile" if _has_real_detector() else ReplayDetector()


@pytest.fixture(scope="session")
def seeded_detector_dir(tmp_path_factory) -> Path:
    """A weights folder holding a RetinaFace MobileNet-0.25 with seeded random weights, in the
    published file's format and size (tests/seeded.py): the real loading code runs on it, and
    it finds no face in the test photos."""
    import seeded

    folder = tmp_path_factory.mktemp("seeded-detector")
    seeded.write_retinaface(folder)
    return folder


@pytest.fixture(scope="session")
def pipeline_weights_dir(tmp_path_factory, seeded_weights_dir, seeded_detector_dir) -> Path:
    """A weights folder with what the default pipeline needs besides GPEN.

    The real RetinaFace MobileNet weights where they are at hand; else the seeded one, whose
    file the driver of `--engine ray` checks, while its faces come from the official detector,
    replayed (in this process `_replay_detector_without_weights`, in the processes a test starts
    `process_environment`). And the seeded ParseNet of the official references (its labels
    split faces into several classes, as real weights do).
    """
    folder = tmp_path_factory.mktemp("pipeline-weights")
    if _has_real_detector():
        detector = real_weights("retinaface-mobile")
    else:
        detector = seeded_detector_dir / "detection_mobilenet0.25_Final.pth"
    (folder / detector.name).symlink_to(detector)
    (folder / "parsing_parsenet.pth").symlink_to(seeded_weights_dir / "parsing_parsenet.pth")
    return folder


# ParseNet of the published architecture, narrowed (8–16 channels, one body block, down to
# 64 px): the loader reads that layout from its tensors. A face costs 0.15 s instead of 2–5,
# for the tests where the parsing mask is part of the run, not the numbers under test (the
# official references use the seeded published-width ParseNet).
LIGHT_PARSENET = {"base_ch": 8, "ch_range": [8, 16], "res_depth": 1, "min_feat_size": 64}


@pytest.fixture(scope="session")
def light_parsenet_file(tmp_path_factory) -> Path:
    """The narrow ParseNet, seed 2 (its labels split a face into several classes)."""
    import torch

    from gpen_cli.stages.mask import random_parsenet

    path = tmp_path_factory.mktemp("light-parsenet") / "parsing_parsenet.pth"
    torch.save(random_parsenet(2, **LIGHT_PARSENET).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def light_pipeline_weights_dir(tmp_path_factory, pipeline_weights_dir, light_parsenet_file):
    """`pipeline_weights_dir`'s detector with the narrow ParseNet."""
    folder = tmp_path_factory.mktemp("light-pipeline-weights")
    for path in pipeline_weights_dir.iterdir():
        target = light_parsenet_file if path.name == light_parsenet_file.name else path.resolve()
        (folder / path.name).symlink_to(target)
    return folder


REPLAY_SITE = REPO / "tests" / "replay_site"


def process_environment(**extra: str) -> dict[str, str]:
    """The environment for a `gpen` process a test starts (Ray starts its workers with the
    same): this checkout's gpen_cli first on PYTHONPATH and, where the real detector weights
    are absent, tests/replay_site, whose sitecustomize makes `load_detector` replay the
    official faces in that process as `_replay_detector_without_weights` does in this one."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH", "")])]
    if not _has_real_detector():
        paths.insert(0, str(REPLAY_SITE))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


@pytest.fixture(autouse=True)
def _replay_detector_without_weights(request, monkeypatch):
    """Where a test runs the pipeline in this process with `pipeline_weights_dir` and the real
    detector weights are absent, its detector replays the official detector's faces."""
    if "pipeline_weights_dir" not in request.fixturenames or _has_real_detector():
        return
    monkeypatch.setattr("gpen_cli.pipeline.resolve.load_detector", load_replay_detector)


# ---------------------------------------------------------------- a quiet account of the skips

MAX_SKIPS_ENV = "GPEN_MAX_SKIPS"  # set (CI's fresh-clone run): more skips than this fail the run
_SKIPS: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPS.append(reason.removeprefix("Skipped: "))


def _too_many_skips() -> int | None:
    limit = os.environ.get(MAX_SKIPS_ENV, "").strip()
    return int(limit) if limit and len(_SKIPS) > int(limit) else None


def pytest_sessionfinish(session, exitstatus) -> None:
    if _too_many_skips() is not None and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    """One line for every skip, grouped by reason, instead of a line per test."""
    if not _SKIPS:
        return
    counts: dict[str, int] = {}
    for reason in _SKIPS:
        counts[reason] = counts.get(reason, 0) + 1
    groups = "; ".join(
        f"{n}× {reason}" for reason, n in sorted(counts.items(), key=lambda i: -i[1])
    )
    terminalreporter.write_line(f"skipped {len(_SKIPS)}: {groups}")
    limit = _too_many_skips()
    if limit is not None:
        terminalreporter.write_line(
            f"FAILED: {len(_SKIPS)} tests skipped, more than {MAX_SKIPS_ENV}={limit}: a test "
            "depends on a file a fresh clone lacks",
            red=True,
        )
