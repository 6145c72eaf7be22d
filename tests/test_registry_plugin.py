"""A detector added in this file alone — one class, one registration, random weights —
is a choice of `gpen restore --detector`, listed in `--help`, used by doctor's self-test and
timed by `gpen bench`: nothing else names it (issue 22, "the registry is the single source").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_as
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.core.config import DetectorName, RestoreConfig
from gpen_cli.doctor import selftest
from gpen_cli.doctor.result import PASS, DoctorContext
from gpen_cli.stages.align import reference_points
from gpen_cli.stages.faces import Face
from gpen_cli.weights import registry, store
from gpen_cli.weights.checkpoints import read_state_dict, seeded

NAME = "centre-face"
runner = CliRunner()


class _CentreNet(torch.nn.Module):
    """The detector's one weight: the face's side as a fraction of the photo's short side."""

    def __init__(self) -> None:
        super().__init__()
        self.fraction = torch.nn.Parameter(0.4 + 0.2 * torch.rand(()))


class CentreFaceDetector:
    """Finds one upright face in the middle of any photo, as the `Detector` protocol asks."""

    def __init__(self, weights_path: Path, device="cpu", score_threshold=None,
                 min_face_size=0.0, drop_nested=False) -> None:  # fmt: skip
        self.fraction = float(read_state_dict(Path(weights_path))["fraction"])
        self.score_threshold = 0.5 if score_threshold is None else score_threshold
        self.min_face_size = min_face_size

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        height, width = image_bgr.shape[:2]
        side = self.fraction * min(height, width)
        if side < self.min_face_size or self.score_threshold > 0.99:
            return []
        corner = np.array([(width - side) / 2, (height - side) / 2])
        landmarks = corner + reference_points(256) / 256 * side
        return [Face(np.array([*corner, *(corner + side)]), 0.99, landmarks)]


def _random_centre_net(seed: int) -> _CentreNet:
    with seeded(seed):
        return _CentreNet()


SPEC = registry.ModelSpec(
    name=NAME,
    filename="centre_face.pth",
    url="",  # nothing to download: its file is made by random_init
    kind="detector",
    builder=CentreFaceDetector,
    random_init=_random_centre_net,
    description="A test detector: one face in the middle of the photo.",
)


@pytest.fixture
def centre_detector(tmp_path):
    """The detector registered for the test, its random weights in a weights folder of
    their own (no other detector there)."""
    registry.register(SPEC)
    try:
        yield store.write_random_weights(SPEC, tmp_path / "weights", seed=3).parent
    finally:
        registry.unregister(NAME)


def _help_names(output: str) -> str:
    """The help text without the table's frame and wrapping."""
    return re.sub(r"[\s│|]+", " ", output)


def test_a_registered_detector_is_listed_in_help_and_accepted_by_the_config(centre_detector):
    result = runner.invoke(app, ["restore", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert NAME in _help_names(result.output)
    assert RestoreConfig(detector="Centre-Face").detector is DetectorName(NAME)
    assert DetectorName.CENTRE_FACE in list(DetectorName)


def test_gpen_restore_runs_the_registered_detector(centre_detector, tiny_checkpoint, tmp_path):
    photo = photo_as("portrait", tmp_path / "in" / "portrait.png")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["restore", str(photo), "-o", str(out), "--detector", NAME, "--model",
         str(tiny_checkpoint), "--weights-dir", str(centre_detector), "--mask", "rect",
         "--device", "cpu", "--report", str(tmp_path / "report.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "portrait.png").is_file()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["faces"] == 1


def test_doctors_self_test_covers_the_registered_detector(centre_detector):
    result = selftest.self_test(DoctorContext(centre_detector))
    assert result.status == PASS, result.detail
    assert f"+ {NAME};" in result.detail and "restored 1 face of" in result.detail


@pytest.mark.slow
def test_gpen_bench_times_the_registered_detector(centre_detector, tiny_checkpoint, tmp_path):
    photo_as("portrait", tmp_path / "photos" / "portrait.png")
    result = runner.invoke(
        app,
        ["bench", "--model", str(tiny_checkpoint), "-b", "1", "--repeats", "1", "--images",
         str(tmp_path / "photos"), "--detector", NAME, "--weights-dir", str(centre_detector),
         "--mask", "rect", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "pipeline"
    assert report["results"][0]["faces"] == 1 and "detect" in report["results"][0]["stages_s"]
