"""Paste-back: same result as the official whole-image blend, at the cost of the faces' area."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
from conftest import photo_path

from gpen_cli.stages.align import align_face, reference_points, warp_crop
from gpen_cli.stages.mask import rect_mask
from gpen_cli.stages.paste import Paste, paste_faces, warp_region

# Photos of the sizes the geometry below was laid out on, made from the test portrait.
_SIZES = {"portrait_small.jpg": (418, 520), "ffhq_00000_lq.png": (1024, 1024),
          "ffhq_00001_lq.png": (1024, 1024)}  # fmt: skip


def _image(name: str) -> np.ndarray:
    portrait = cv2.imread(str(photo_path("portrait")), cv2.IMREAD_COLOR)
    return cv2.resize(portrait, _SIZES[name], interpolation=cv2.INTER_CUBIC)


def _landmarks(size: int, scale: float, angle: float, center: tuple[float, float]) -> np.ndarray:
    """The template of a `size` crop placed in an image: rotated, scaled, centred on `center`."""
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return (reference_points(size) - size / 2) @ rotation.T + np.array(center)


def _official_paste(image: np.ndarray, pastes: list[Paste]) -> np.ndarray:
    """face_enhancement.py's blend: every face and mask warped over the whole image."""
    height, width = image.shape[:2]
    full_mask = np.zeros((height, width), np.float32)
    full_img = np.zeros(image.shape, np.uint8)
    for paste in pastes:
        warped_mask = cv2.warpAffine(paste.mask, paste.inverse, (width, height), flags=3)
        warped_face = cv2.warpAffine(paste.crop, paste.inverse, (width, height), flags=3)
        takes = warped_mask - full_mask > 0
        full_mask[takes] = warped_mask[takes]
        full_img[takes] = warped_face[takes]
    full_mask = full_mask[:, :, None]
    return cv2.convertScaleAbs(image * (1 - full_mask) + full_img * full_mask)


def _footprint(pastes: list[Paste], height: int, width: int, grow: int) -> np.ndarray:
    """Pixels the crops can reach, grown by `grow` pixels."""
    reach = np.zeros((height, width), np.uint8)
    for paste in pastes:
        size = paste.crop.shape[0]
        square = np.full((size, size), 255, np.uint8)
        reach |= cv2.warpAffine(square, paste.inverse, (width, height), flags=cv2.INTER_LINEAR)
    return cv2.dilate(reach, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("seed", range(6))
def test_region_warp_equals_the_whole_image_warp_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(150, 400, 2))
    face = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    mask = rng.random((128, 128)).astype(np.float32)
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 2.5)
    inverse = np.array(
        [
            [scale * np.cos(angle), -scale * np.sin(angle), rng.uniform(-40, width - 40)],
            [scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-40, height - 40)],
        ]
    )
    box = (int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2)), width, height)
    for pixels in (face, mask):
        whole = cv2.warpAffine(pixels, inverse, (width, height), flags=cv2.INTER_LINEAR)
        part = warp_region(pixels, inverse, box)
        np.testing.assert_array_equal(part, whole[box[1] :, box[0] :])


@pytest.mark.parametrize(
    ("name", "scale", "center"),
    [("portrait_small.jpg", 0.5, (209.0, 240.0)), ("ffhq_00000_lq.png", 1.2, (512.0, 520.0))],
)
def test_pasting_an_unchanged_crop_gives_the_photo_back(
    name: str, scale: float, center: tuple[float, float]
) -> None:
    image = _image(name)
    alignment = align_face(_landmarks(512, scale, 0.2, center), 512)
    crop = warp_crop(image, alignment)
    paste = Paste(crop, alignment.inverse, rect_mask(512))

    out = paste_faces(image, [paste])

    assert out.dtype == image.dtype and out.shape == image.shape
    assert _psnr(out, image) >= 40
    untouched = ~_footprint([paste], *image.shape[:2], grow=2)
    assert untouched.mean() > 0.05
    assert np.array_equal(out[untouched], image[untouched])
    assert not np.array_equal(out, image)  # something was pasted


def _translated(crop: np.ndarray, x: int, y: int, mask: np.ndarray | None = None) -> Paste:
    mask = rect_mask(crop.shape[0]) if mask is None else mask
    return Paste(crop, np.array([[1.0, 0, x], [0, 1.0, y]]), mask)


@pytest.mark.parametrize("in_place", [False, True])
def test_overlapping_faces_match_the_official_running_maximum_exactly(in_place: bool) -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (300, 360, 3), dtype=np.uint8)
    crops = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(4)]
    ramp = np.tile(np.linspace(0, 1, 128, dtype=np.float32), (128, 1))
    pastes = [
        _translated(crops[0], 40, 50),
        _translated(crops[1], 100, 80),  # overlaps the first
        _translated(crops[2], 70, 60, mask=ramp),  # overlaps both, its own mask
        _translated(crops[3], 40, 50, mask=rect_mask(128).copy()),  # ties with the first: loses
    ]

    expected = _official_paste(image, pastes)
    out = paste_faces(image, pastes, in_place=in_place)

    np.testing.assert_array_equal(out, expected)
    assert (out is image) == in_place


@pytest.mark.parametrize("in_place", [False, True])
def test_overlapping_rotated_faces_agree_with_the_official_blend(in_place: bool) -> None:
    image = _image("portrait_small.jpg")
    face = cv2.resize(_image("ffhq_00001_lq.png"), (512, 512), interpolation=cv2.INTER_AREA)
    pastes = []
    for scale, angle, center in [(0.5, 0.2, (200, 250)), (0.45, -0.3, (280, 300))]:
        alignment = align_face(_landmarks(512, scale, angle, center), 512)
        pastes.append(Paste(face, alignment.inverse, rect_mask(512)))

    expected = _official_paste(image, pastes)
    out = paste_faces(image, pastes, in_place=in_place)

    np.testing.assert_array_equal(out, expected)
    assert (out is image) == in_place


@pytest.mark.parametrize("center", [(5.0, 8.0), (410.0, 515.0), (-60.0, 200.0)])
def test_face_partly_outside_the_image(center: tuple[float, float]) -> None:
    image = _image("portrait_small.jpg")
    alignment = align_face(_landmarks(512, 0.45, 0.3, center), 512)
    crop = np.full((512, 512, 3), (30, 200, 90), np.uint8)
    paste = Paste(crop, alignment.inverse, rect_mask(512))

    out = paste_faces(image, [paste])

    untouched = ~_footprint([paste], *image.shape[:2], grow=2)
    assert np.array_equal(out[untouched], image[untouched])
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(out, _official_paste(image, [paste]))


def test_face_wholly_outside_leaves_the_image_alone() -> None:
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alignment = align_face(_landmarks(256, 0.1, 0.0, (500.0, 500.0)), 256)
    out = paste_faces(
        image, [Paste(np.full((256, 256, 3), 255, np.uint8), alignment.inverse, rect_mask(256))]
    )
    assert np.array_equal(out, image)


def test_16_bit_image_keeps_its_depth_and_untouched_pixels() -> None:
    rng = np.random.default_rng(2)
    image8 = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    image16 = image8.astype(np.uint16) * 257
    crop = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    alignment = align_face(_landmarks(256, 0.4, -0.2, (120.0, 100.0)), 256)
    paste = Paste(crop, alignment.inverse, rect_mask(256))

    out16 = paste_faces(image16, [paste])

    assert out16.dtype == np.uint16
    untouched = ~_footprint([paste], 200, 240, grow=2)
    assert np.array_equal(out16[untouched], image16[untouched])
    # At the face's centre the mask is 1: the 8-bit face, scaled to the full 16-bit range.
    centre = np.round(alignment.inverse @ np.array([128.0, 128.0, 1.0])).astype(int)
    x, y = centre
    face_in_image = cv2.warpAffine(crop, alignment.inverse, (240, 200), flags=cv2.INTER_LINEAR)
    assert np.abs(out16[y, x].astype(int) - face_in_image[y, x].astype(int) * 257).max() <= 257
    out8 = paste_faces(image8, [paste])
    # The same blend as at 8 bits, without its rounding to 256 levels.
    assert np.abs(out16.astype(int) - out8.astype(int) * 257).max() <= 129


def test_input_is_not_modified_and_bad_images_are_refused() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    alignment = align_face(_landmarks(256, 0.2, 0.0, (32.0, 32.0)), 256)
    out = paste_faces(
        image, [Paste(np.full((256, 256, 3), 255, np.uint8), alignment.inverse, rect_mask(256))]
    )
    assert out.any() and not image.any()
    with pytest.raises(ValueError, match="HxWx3"):
        paste_faces(np.zeros((64, 64), np.uint8), [])
    with pytest.raises(ValueError, match="HxWx3"):
        paste_faces(np.zeros((64, 64, 3), np.float32), [])


def _traced_peak(function, *args, **kwargs) -> tuple[np.ndarray, int]:
    """What `function` returns, and the most memory it allocated meanwhile (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("in_place", [False, True])
def test_paste_cost_is_bound_to_the_face_region(in_place: bool) -> None:
    # A zero image costs no memory until written; the copy paste_faces returns does.
    image = np.zeros((8000, 8000, 3), np.uint8)
    alignment = align_face(_landmarks(512, 0.3, 0.1, (5000.0, 3000.0)), 512)
    paste = Paste(np.full((512, 512, 3), 200, np.uint8), alignment.inverse, rect_mask(512))

    out, extra = _traced_peak(paste_faces, image, [paste], in_place=in_place)

    # The returned copy (none in place) plus a few MB of face region: no whole-image mask or
    # warp (a float32 mask alone would be 256 MB).
    assert extra < (0 if in_place else image.nbytes) + 16 * 2**20
    box = 512 * 0.3 * np.sqrt(2) / 2 + 4  # half-diagonal of the face's footprint, and margin
    assert not out[: int(3000 - box)].any() and not out[int(3000 + box) + 1 :].any()
    assert not out[:, : int(5000 - box)].any() and not out[:, int(5000 + box) + 1 :].any()
    assert out[3000, 5000].tolist() == [200, 200, 200]


@pytest.mark.slow
def test_a_large_face_is_warped_and_blended_in_strips_of_a_few_mb() -> None:
    """A face 3000 px across: temporaries stay far below the face box's float32 copies."""
    image = np.zeros((4000, 4000, 3), np.uint8)
    alignment = align_face(_landmarks(512, 6.0, 0.0, (2000.0, 2000.0)), 512)
    paste = Paste(np.full((512, 512, 3), 200, np.uint8), alignment.inverse, rect_mask(512))

    out, extra = _traced_peak(paste_faces, image, [paste], in_place=True)

    box_pixels = int(np.count_nonzero(out.any(axis=2)))
    assert box_pixels > 2500**2
    # What stays for the whole box is the warped face, mask and winning pixels (9 bytes a
    # pixel); float32 copies of the box's colours alone would add 12 bytes a pixel each.
    assert extra < box_pixels * 12
