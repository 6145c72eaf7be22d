"""The default output is the official output: `FaceEnhancement.process` of yangxy/GPEN.

../shared/fixtures/official_pipeline holds what the official pipeline made of two photos
with seeded random GPEN-BFR-256 and ParseNet weights and RetinaFace MobileNet-0.25: the whole
restored photo, the aligned crop and GPEN's restored crop. The same weights through the
default pipeline must give the same photo.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_file
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.restorer import FaceRestorer

FIXTURES = "fixtures/official_pipeline"
PHOTOS = ["portrait_small", "group_small"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def within_one_level(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose every channel is within one grey level."""
    return float(np.mean(np.abs(a.astype(int) - b.astype(int)).max(axis=2) <= 1))


def fixture_image(name: str) -> np.ndarray:
    return cv2.imread(str(shared_file(f"{FIXTURES}/{name}")), cv2.IMREAD_COLOR)


def photo(stem: str) -> np.ndarray:
    return cv2.imread(str(shared_file(f"assets/images/{stem}.jpg")), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def official_restorer(pipeline_weights_dir) -> FaceRestorer:
    """The default pipeline given the fixture's weights and detector; nothing else set."""
    return FaceRestorer(
        shared_file(f"{FIXTURES}/GPEN-BFR-256.pth"),
        "retinaface-mobile",
        weights_dir=pipeline_weights_dir,
        device="cpu",
    )


@pytest.mark.slow
@pytest.mark.parametrize("stem", PHOTOS)
def test_default_pipeline_gives_the_official_photo(official_restorer, stem):
    result = official_restorer.restore(photo(stem))
    official = fixture_image(f"{stem}_GPEN.png")
    assert result.image.shape == official.shape
    assert psnr(result.image, official) >= 50.0
    assert within_one_level(result.image, official) >= 0.999
    # The aligned crop is the official one exactly.
    np.testing.assert_array_equal(result.input_crops[0], fixture_image(f"{stem}_face00_in.png"))


@pytest.mark.parametrize("stem", PHOTOS)
def test_exact_generator_gives_the_official_crop_bit_for_bit(pipeline_weights_dir, stem):
    restorer = FaceRestorer(
        shared_file(f"{FIXTURES}/GPEN-BFR-256.pth"),
        "retinaface-mobile",
        weights_dir=pipeline_weights_dir,
        device="cpu",
        exact=True,
        aligned=True,
    )
    restored = restorer.forward([fixture_image(f"{stem}_face00_in.png")])[0].image
    # Same input normalisation, same layer arithmetic, same truncating 8-bit conversion.
    np.testing.assert_array_equal(restored, fixture_image(f"{stem}_face00_out.png"))


@pytest.mark.slow
def test_gpen_restore_with_no_flags_writes_the_official_photo(tmp_path, pipeline_weights_dir):
    source = tmp_path / "portrait_small.jpg"
    source.write_bytes(shared_file("assets/images/portrait_small.jpg").read_bytes())
    result = CliRunner().invoke(
        app,
        [
            "restore", str(source), "-o", str(tmp_path / "out"), "--ext", "png",
            "--model", str(shared_file(f"{FIXTURES}/GPEN-BFR-256.pth")),
            "--detector", "retinaface-mobile", "--weights-dir", str(pipeline_weights_dir),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "out" / "portrait_small.png"), cv2.IMREAD_COLOR)
    official = fixture_image("portrait_small_GPEN.png")
    assert psnr(written, official) >= 50.0 and within_one_level(written, official) >= 0.999
