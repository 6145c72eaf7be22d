"""Fidelity blend and CLAHE on face crops."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import seeded

from gpen_cli.stages.blend import blend_fidelity
from gpen_cli.stages.clahe import apply_clahe


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    restored = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    original = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    return restored, original


def test_blend_ends_are_exact() -> None:
    restored, original = _pair()
    assert np.array_equal(blend_fidelity(restored, original, 1.0), restored)
    assert np.array_equal(blend_fidelity(restored, original, 0.0), original)
    assert blend_fidelity(restored, original, 0).dtype == np.uint8


def test_blend_midpoint_is_the_rounded_mean() -> None:
    restored, original = _pair()
    mixed = blend_fidelity(restored, original, 0.5)
    mean = (restored.astype(np.float64) + original) / 2
    assert mixed.dtype == np.uint8
    assert np.abs(mixed - mean).max() <= 0.5
    quarter = blend_fidelity(restored, original, 0.25)
    assert np.abs(quarter - (0.25 * restored + 0.75 * original.astype(np.float64))).max() <= 0.5


def test_blend_keeps_16_bit() -> None:
    restored = np.full((4, 4, 3), 65535, np.uint16)
    original = np.zeros((4, 4, 3), np.uint16)
    mixed = blend_fidelity(restored, original, 0.5)
    assert mixed.dtype == np.uint16 and np.all(np.abs(mixed.astype(int) - 32768) <= 1)


@pytest.mark.parametrize("weight", [-0.01, 1.5, math.nan])
def test_blend_rejects_weights_outside_zero_to_one(weight: float) -> None:
    restored, original = _pair()
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend_fidelity(restored, original, weight)


def test_blend_rejects_mismatched_crops() -> None:
    restored, original = _pair()
    with pytest.raises(ValueError, match="differ"):
        blend_fidelity(restored, original[:32], 0.5)


def _faded_face() -> np.ndarray:
    face = cv2.imread(str(seeded.OFFICIAL / "astronaut_320_face00_in.png"))  # an aligned face
    return np.round(face.astype(np.float32) * 0.25 + 96).astype(np.uint8)  # a quarter of the range


def _local_contrast(lightness: np.ndarray) -> float:
    values = lightness.astype(np.float32)
    mean = cv2.blur(values, (15, 15))
    variance = cv2.blur(values * values, (15, 15)) - mean * mean
    return float(np.sqrt(np.maximum(variance, 0)).mean())


def test_clahe_raises_local_contrast_of_lightness_and_leaves_colour() -> None:
    faded = _faded_face()

    out = apply_clahe(faded)

    assert out.shape == faded.shape and out.dtype == np.uint8
    before = cv2.cvtColor(faded, cv2.COLOR_BGR2LAB).astype(int)
    after = cv2.cvtColor(out, cv2.COLOR_BGR2LAB).astype(int)
    assert _local_contrast(after[:, :, 0]) > 1.5 * _local_contrast(before[:, :, 0])
    # a and b go through Lab -> BGR -> Lab in 8 bits: at most a level of rounding.
    colour_shift = np.abs(after[:, :, 1:] - before[:, :, 1:])
    assert colour_shift.mean() < 0.1 and np.percentile(colour_shift, 99.9) <= 1


def test_clahe_clip_limit_controls_strength() -> None:
    faded = _faded_face()
    gentle = cv2.cvtColor(apply_clahe(faded, clip_limit=1.0), cv2.COLOR_BGR2LAB)[:, :, 0]
    strong = cv2.cvtColor(apply_clahe(faded, clip_limit=4.0), cv2.COLOR_BGR2LAB)[:, :, 0]
    assert _local_contrast(strong) > _local_contrast(gentle)


def test_clahe_refuses_non_8_bit_crops() -> None:
    with pytest.raises(ValueError, match="uint8"):
        apply_clahe(np.zeros((32, 32, 3), np.uint16))
