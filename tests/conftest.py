"""Shared test helpers: where the reference data lives, and skips when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gpen_cli  # noqa: F401  (first, as the CLI imports it: bounds OpenCV's decoder before cv2 loads)

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("GPEN_SHARED_DIR", REPO.parent / "shared"))


def shared_file(relative: str) -> Path:
    """A file from ../shared, or skip the test saying what is missing."""
    path = shared_dir() / relative
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (set GPEN_SHARED_DIR to the shared/ folder)")
    return path


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
def pipeline_weights_dir(tmp_path_factory) -> Path:
    """A weights folder with what the default pipeline needs besides GPEN, from ../shared.

    The real RetinaFace MobileNet weights, and the seeded random ParseNet of the official
    pipeline fixture (its labels split faces into several classes, as real weights do).
    """
    folder = tmp_path_factory.mktemp("pipeline-weights")
    for relative in (
        "assets/weights/detection_mobilenet0.25_Final.pth",
        "fixtures/official_pipeline/parsing_parsenet.pth",
    ):
        source = shared_file(relative)
        (folder / source.name).symlink_to(source)
    return folder
