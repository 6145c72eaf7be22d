"""Short-edge resize: exact short side, aspect kept, dtype and channels kept, and back again."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpen_cli.core.errors import GpenError, InputError
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.resize import resize_short_edge, resize_to


def _smooth_image(height: int, width: int, channels: int, dtype: type) -> np.ndarray:
    """Gradients, one per channel: resizing them changes values only slightly."""
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    planes = [x, y, (x + y) / 2, 1 - x][:channels]
    image = np.round(np.stack(planes, axis=-1) * np.iinfo(dtype).max).astype(dtype)
    return image[:, :, 0] if channels == 1 else image


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40), (7, 300)])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("short_edge", [16, 64, 101])
def test_short_edge_lands_exactly_with_aspect_kept(shape, channels, dtype, short_edge):
    image = _smooth_image(*shape, channels, dtype)
    resized, scale = resize_short_edge(image, short_edge)

    height, width = shape
    assert min(resized.shape[:2]) == short_edge
    assert scale == pytest.approx(short_edge / min(height, width))
    long_before, long_after = max(height, width), max(resized.shape[:2])
    assert long_after == round(long_before * scale)
    # aspect ratio kept to within the rounding of one pixel on the long side
    assert abs(long_after / short_edge - long_before / min(height, width)) <= 0.5 / short_edge
    assert (resized.shape[0] >= resized.shape[1]) == (height >= width)
    assert resized.dtype == dtype
    assert resized.shape[2:] == image.shape[2:]


def test_same_short_edge_returns_the_image_untouched():
    image = _smooth_image(30, 50, 3, np.uint8)
    resized, scale = resize_short_edge(image, 30)
    assert resized is image
    assert scale == 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("short_edge", [24, 120])
def test_back_to_original_size_is_close_to_the_original(dtype, short_edge):
    image = _smooth_image(48, 64, 3, dtype)
    resized, _ = resize_short_edge(image, short_edge)
    restored = resize_to(resized, 64, 48)

    assert restored.shape == image.shape and restored.dtype == dtype
    top = np.iinfo(dtype).max
    error = np.abs(restored.astype(np.float64) - image.astype(np.float64)).mean() / top
    assert error < 0.01


def test_uint16_keeps_values_beyond_8_bit():
    image = _smooth_image(40, 40, 3, np.uint16)
    resized, _ = resize_short_edge(image, 90)
    assert resized.max() > 60000


def test_shrinking_averages_fine_detail_instead_of_aliasing():
    """Stripes finer than the new pixel grid must fade, not come back as a coarse pattern.

    Stripes of period 3 px (amplitude 100) shrunk 4×: area averaging leaves a std of ~17,
    Lanczos' fixed kernel ~69 (a false pattern).
    """
    row = np.sin(2 * np.pi * np.arange(128) / 3) * 100 + 127.5
    stripes = np.round(np.tile(row, (128, 1))).astype(np.uint8)
    small, scale = resize_short_edge(stripes, 32)
    assert scale == 0.25
    assert small.astype(np.float64).std() < 25


def test_resize_to_same_size_is_identity():
    image = _smooth_image(10, 20, 3, np.uint8)
    assert resize_to(image, 20, 10) is image


@pytest.mark.parametrize("short_edge", [0, -5])
def test_short_edge_must_be_positive(short_edge):
    with pytest.raises(ValueError, match="short_edge"):
        resize_short_edge(np.zeros((10, 10, 3), np.uint8), short_edge)


def test_short_edge_that_would_enlarge_past_the_pixel_limit_is_refused_before_allocating():
    thin = np.zeros((20, 4000, 3), np.uint8)  # 8000 px short edge: 8000×1.6 M px
    with pytest.raises(InputError, match=r"short edge 8000 would enlarge this 4000×20 photo"):
        resize_short_edge(thin, 8000)
    assert resize_short_edge(thin, 40)[0].shape == (40, 8000, 3)  # within the limit


def test_short_edge_has_an_upper_bound():
    with pytest.raises(GpenError, match="short_edge: must be between 16 and 8192, got 100000"):
        FaceRestorer(torch.nn.Identity(), size=64, device="cpu", short_edge=100_000)
