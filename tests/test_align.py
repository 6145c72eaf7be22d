"""The alignment stage against numbers and crops from the official GPEN code (tests/data)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import seeded

from gpen_cli.stages.align import (
    Alignment,
    align_face,
    reference_points,
    similarity_transform,
    warp_crop,
)


def _fixture() -> dict:
    """The official template and transforms (scripts/make_official_references.py)."""
    return json.loads((seeded.OFFICIAL / "alignment_reference.json").read_text())


def _image(name: str) -> np.ndarray:
    return cv2.imread(str(seeded.DATA / "photos" / name), cv2.IMREAD_COLOR)


def _similarity(scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("size", [256, 512, 1024, 2048])
def test_reference_points_match_official_template(size: int) -> None:
    expected = np.array(_fixture()["reference_points"][str(size)])
    points = reference_points(size)
    assert points.shape == (5, 2) and points.dtype == np.float64
    np.testing.assert_allclose(points, expected, rtol=0, atol=1e-6)


def test_alignment_matches_official_transforms_on_every_case() -> None:
    cases = _fixture()["cases"]
    assert len(cases) >= 10
    for index, case in enumerate(cases):
        alignment = align_face(np.array(case["landmarks"]), case["size"])
        assert alignment.size == case["size"]
        np.testing.assert_allclose(
            alignment.forward, case["forward"], rtol=0, atol=1e-9, err_msg=f"case {index}"
        )
        np.testing.assert_allclose(
            alignment.inverse, case["inverse"], rtol=0, atol=1e-4, err_msg=f"case {index}"
        )


def test_landmarks_on_a_similar_template_are_mapped_exactly_onto_it() -> None:
    template = reference_points(512)
    placement = _similarity(0.37, 0.6, (812.5, 143.25))
    alignment = align_face(_apply(placement, template), 512)
    np.testing.assert_allclose(
        _apply(alignment.forward, _apply(placement, template)), template, atol=1e-3
    )
    np.testing.assert_allclose(alignment.inverse, placement, atol=1e-3)
    identity = alignment.inverse[:, :2] @ alignment.forward[:, :2]
    np.testing.assert_allclose(identity, np.eye(2), atol=1e-9)


def test_fit_is_least_squares_over_noisy_points() -> None:
    rng = np.random.default_rng(3)
    template = reference_points(256)
    landmarks = _apply(_similarity(2.5, -0.3, (40.0, 70.0)), template) + rng.normal(0, 3, (5, 2))
    best = similarity_transform(landmarks, template)
    best_error = np.sum((_apply(best, landmarks) - template) ** 2)
    for _ in range(50):  # every nearby similarity fits worse
        a, b, tx, ty = rng.normal(0, [1e-3, 1e-3, 0.3, 0.3])
        nudged = best + np.array([[a, -b, tx], [b, a, ty]])
        assert np.sum((_apply(nudged, landmarks) - template) ** 2) > best_error


def test_mirrored_landmarks_still_give_a_rotation_not_a_reflection() -> None:
    # The official Umeyama fit never reflects, even where a mirrored fit would be closer.
    template = reference_points(512)
    mirrored = template.copy()
    mirrored[:, 0] = 600 - mirrored[:, 0]
    forward = align_face(mirrored, 512).forward
    assert np.linalg.det(forward[:, :2]) > 0


@pytest.mark.parametrize(
    ("landmarks", "reason"),
    [
        (np.full((5, 2), 10.0), "degenerate"),
        (np.array([[1.0, 2.0]] * 4 + [[np.nan, 3.0]]), "not finite"),
    ],
    ids=["one-point", "nan"],
)
def test_degenerate_landmarks_are_rejected(landmarks: np.ndarray, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        align_face(landmarks, 512)


def _official_crop(image: np.ndarray, forward: np.ndarray, size: int) -> np.ndarray:
    # What warp_and_crop_face does: the whole image, cv2 flag 3, default black border.
    return cv2.warpAffine(image, np.asarray(forward, dtype=np.float64), (size, size), flags=3)


def test_crops_match_official_crops_within_one_level() -> None:
    image = _image(_fixture()["photo"])
    for index, case in enumerate(_fixture()["cases"]):
        size = case["size"]
        expected = _official_crop(image, case["forward"], size)
        official_alignment = Alignment(np.array(case["forward"]), np.array(case["inverse"]), size)
        crop = warp_crop(image, official_alignment)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        diff = np.abs(crop.astype(int) - expected)
        assert diff.max() <= 1, f"case {index}"
        # Our own fit reproduces the official float32 arithmetic: the very same crop.
        ours = warp_crop(image, align_face(np.array(case["landmarks"]), size))
        assert np.array_equal(ours, expected), f"case {index}"


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_crop_of_a_face_at_the_border_reads_only_its_region_and_pads_black(corner: str) -> None:
    image = _image("astronaut_320.png")
    height, width = image.shape[:2]
    center = (20.0, 30.0) if corner == "top-left" else (width - 15.0, height - 25.0)
    # Template centred on `center` at scale 0.4: half the crop lies outside the image.
    placement = _similarity(0.4, 0.35, (0.0, 0.0))
    placement[:, 2] = np.array(center) - placement[:, :2] @ np.array([256.0, 256.0])
    alignment = align_face(_apply(placement, reference_points(512)), 512)

    crop = warp_crop(image, alignment)

    expected = _official_crop(image, alignment.forward, 512)
    assert np.abs(crop.astype(int) - expected).max() <= 1
    white = np.full((height, width), 255, np.uint8)
    outside = cv2.warpAffine(white, alignment.forward, (512, 512)) == 0
    assert outside.mean() > 0.3
    assert not crop[outside].any()


def test_crop_of_a_face_wholly_outside_is_black() -> None:
    image = np.full((50, 60, 3), 200, np.uint8)
    placement = _similarity(0.1, 0.0, (500.0, 500.0))
    crop = warp_crop(image, align_face(_apply(placement, reference_points(256)), 256))
    assert crop.shape == (256, 256, 3) and not crop.any()


def test_crop_keeps_16_bit_depth() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65536, (300, 200, 3), dtype=np.uint16)
    placement = _similarity(0.3, 0.1, (30.0, 60.0))
    alignment = align_face(_apply(placement, reference_points(256)), 256)
    crop = warp_crop(image, alignment)
    assert crop.dtype == np.uint16
    assert np.abs(crop.astype(int) - _official_crop(image, alignment.forward, 256)).max() <= 1
