"""`cv2.resize(np.float32(image), (0, 0), fx=f, fy=f)` without the whole float32 image.

The official detector converts the photo to float32 and then shrinks it bilinearly to a
1000 px long side: for a 108 MP photo that float copy alone is 1.3 GB, four times the photo.
Computing the bilinear resize ourselves cannot promise the same bits: with the opencv-python
wheels a float32 INTER_LINEAR resize runs through Intel IPP (an affine warp whose arithmetic
is IPP's own, and that differs from OpenCV's generic code, so not even OpenCV's formulas give
its result). So the resize stays OpenCV's, on a full-size float32 source, of which only the
rows the resize reads are written: the rest is anonymous memory never touched, which the
operating system does not back with pages (reading it maps one shared page of zeros). The
output is made in bands of rows: each band's source rows are written, the whole resize runs
(its other rows read zeros, cheaply), the band's rows are kept, and the written pages are
handed back. So the float32 source never holds more than a band's few source rows.

Which rows are read is measured, not assumed: `tests/test_float_resize.py` fills every other
row with NaN and checks the result is still bit-identical, over many shapes and factors.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable

import cv2
import numpy as np

# IPP maps output rows to source rows with its own rounding: a coordinate this close to a
# whole row may be reached from the row before it (measured: exactly whole coordinates are).
_WHOLE_ROW_SLACK = 1e-3
# Output rows made per band: each band costs one resize (milliseconds at a 1000 px output)
# and keeps about twice as many source rows in memory.
BAND_ROWS = 64


def output_rows(source_rows: int, factor: float) -> int:
    """How many rows `cv2.resize(..., (0, 0), fx=factor, fy=factor)` makes: round to nearest
    (half to even, as OpenCV's saturate_cast<int>)."""
    return int(np.rint(source_rows * factor))


def rows_read(
    source_rows: int, factor: float, first: int = 0, stop: int | None = None
) -> np.ndarray:
    """Sorted source rows a bilinear resize by `factor` reads for output rows [first, stop).

    Output row d samples source coordinate y = (d + 0.5) / factor - 0.5, computed in double
    and rounded to float as OpenCV does, between rows floor(y) and floor(y) + 1 (clamped to
    the image). A y within `_WHOLE_ROW_SLACK` of a whole row adds its other neighbour, and the
    two first and two last rows are always included: IPP's border handling reads them.
    """
    stop = output_rows(source_rows, factor) if stop is None else stop
    d = np.arange(first, stop, dtype=np.float64)
    y = ((d + 0.5) * (1.0 / factor) - 0.5).astype(np.float32)
    below = np.floor(y)
    fraction = y - below
    below = below.astype(np.int64)
    candidates = [
        below,
        below + 1,
        below[fraction < _WHOLE_ROW_SLACK] - 1,
        below[fraction > 1 - _WHOLE_ROW_SLACK] + 2,
        np.array([0, 1, source_rows - 2, source_rows - 1]),
    ]
    return np.unique(np.clip(np.concatenate(candidates), 0, source_rows - 1))


def _untouched_float32(shape: tuple[int, ...]) -> tuple[np.ndarray, Callable[[], None]]:
    """A zeroed float32 array whose pages cost memory only once written, and a function that
    hands the written pages back (they read as zeros again, or keep their values where the
    platform cannot: either is correct, as a page only ever holds the photo's own values).

    Private anonymous memory, with transparent huge pages turned off for it: with them, one
    written row would make the kernel back 2 MB around it, most of the rows never read.
    """
    size = int(np.prod(shape)) * 4
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None or size == 0:  # Windows: no private mappings; plain lazily-zeroed memory
        return np.zeros(shape, np.float32), lambda: None
    buffer = mmap.mmap(-1, size, flags=flags)  # -1: anonymous
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buffer.madvise(mmap.MADV_NOHUGEPAGE)
    array = np.frombuffer(buffer, np.float32).reshape(shape)
    dont_need = getattr(mmap, "MADV_DONTNEED", None)
    if dont_need is None:
        return array, lambda: None
    return array, lambda: buffer.madvise(dont_need)


def resize_as_float32(image: np.ndarray, factor: float, band_rows: int = BAND_ROWS) -> np.ndarray:
    """Exactly `cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)` (INTER_LINEAR),
    converting only a band's source rows at a time (for a shrink; others convert it all)."""
    if factor >= 1:
        return cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)
    source, release = _untouched_float32(image.shape)
    height = output_rows(image.shape[0], factor)
    result = np.empty(0, np.float32)
    for first in range(0, height, band_rows):
        stop = min(first + band_rows, height)
        rows = rows_read(image.shape[0], factor, first, stop)
        source[rows] = image[rows]  # uint8 to float32: exact, as np.float32()
        resized = cv2.resize(source, (0, 0), fx=factor, fy=factor)
        if first == 0:
            result = resized  # its rows past this band are replaced by the next bands'
        else:
            result[first:stop] = resized[first:stop]
        release()
    return result
