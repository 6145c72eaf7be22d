"""The detector's float32 shrink, converting only the rows it reads: bit-identical to OpenCV's."""

from __future__ import annotations

import mmap
import tracemalloc

import cv2
import numpy as np
import pytest

from gpen_cli.stages.float_resize import BAND_ROWS, output_rows, resize_as_float32, rows_read


def _official(image: np.ndarray, factor: float) -> np.ndarray:
    """What the official detector does (retinaface_detection.py): float32, then bilinear."""
    return cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)


def _cases(count: int, seed: int) -> list[tuple[int, int, float]]:
    """(height, width, factor): the detector's 1000 / long side for photos over 1500 px, and
    arbitrary shrinks of small odd-sized images."""
    rng = np.random.default_rng(seed)
    cases = [(2000, 1333, 0.5), (1333, 2000, 0.5), (1501, 1501, 1000 / 1501), (3001, 17, 1 / 3)]
    while len(cases) < count:
        if len(cases) % 4 == 0:
            height, width = (int(v) for v in rng.integers(1501, 2600, 2))
            cases.append((height, width, 1000.0 / max(height, width)))
        else:
            height, width = (int(v) for v in rng.integers(3, 300, 2))
            factor = float(rng.uniform(0.04, 0.999))
            if output_rows(height, factor) and round(width * factor):
                cases.append((height, width, factor))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_no_row_outside_rows_read_reaches_the_result(seed):
    """Rows other than those listed for a band of output rows NaN, which any read would
    spread: that band, and the whole output for all the rows, are still bit-identical."""
    rng = np.random.default_rng(100 + seed)
    for height, width, factor in _cases(120, seed):
        image = np.float32(rng.integers(0, 256, (height, width, 3), np.uint8))
        expected = _official(image, factor)
        assert expected.shape[0] == output_rows(height, factor)
        first = int(rng.integers(0, expected.shape[0]))
        stop = int(rng.integers(first + 1, expected.shape[0] + 1))
        for band in ((first, stop), (0, None)):
            rows = rows_read(height, factor, *band)
            poisoned = np.full_like(image, np.nan)
            poisoned[rows] = image[rows]
            got = cv2.resize(poisoned, (0, 0), fx=factor, fy=factor)
            assert np.array_equal(got[slice(*band)], expected[slice(*band)]), (
                height,
                width,
                factor,
                band,
            )


@pytest.mark.parametrize("band_rows", [29, BAND_ROWS, 10_000])
@pytest.mark.parametrize(
    "shape, factor",
    [((2080, 1560, 3), 1000 / 2080), ((1700, 2301, 3), 1000 / 2301), ((40, 31, 3), 0.37)],
)
def test_resize_as_float32_is_the_official_float_resize(shape, factor, band_rows):
    image = np.random.default_rng(3).integers(0, 256, shape, np.uint8)
    got = resize_as_float32(image, factor, band_rows)
    assert got.dtype == np.float32
    assert np.array_equal(got, _official(image, factor))


def test_an_enlargement_is_the_plain_float_resize():
    image = np.random.default_rng(4).integers(0, 256, (20, 30, 3), np.uint8)
    assert np.array_equal(resize_as_float32(image, 1.5), _official(image, 1.5))


@pytest.mark.skipif(not hasattr(mmap, "MAP_PRIVATE"), reason="needs private anonymous mmap")
def test_the_whole_photo_is_never_converted_to_float():
    """Python-side allocations stay far below the 12 bytes a pixel of np.float32(image)."""
    image = np.random.default_rng(5).integers(0, 256, (3000, 2000, 3), np.uint8)
    tracemalloc.start()
    try:
        resize_as_float32(image, 1000 / 3000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < image.size * 4 / 2  # np.float32(image) alone: image.size * 4
