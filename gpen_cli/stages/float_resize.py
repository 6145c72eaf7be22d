"""`cv2.resize(np.float32(image), (0, 0), fx=f, fy=f)` without the whole float32 image.

The official detector converts the photo to float32 and then shrinks it bilinearly to a
1000 px long side: for a 108 MP photo that float copy alone is 1.3 GB, four times the photo.
Computing the bilinear resize ourselves cannot promise the same bits: with the opencv-python
wheels a float32 INTER_LINEAR resize runs through Intel IPP (an affine warp whose arithmetic
is IPP's own, and that differs from OpenCV's generic code, so not even OpenCV's formulas give
its result). So the resize stays OpenCV's, on a full-size float32 source, of which only the
rows the resize reads are written: the rest is anonymous memory never touched, which the
operating system does not back with pages. A bilinear shrink by f reads about 2f of the rows,
so the resident part of the source is a fraction of the photo.

Which rows are read is measured, not assumed: `tests/test_float_resize.py` fills every other
row with NaN and checks the result is still bit-identical, over many shapes and factors.
"""

from __future__ import annotations

import mmap

import cv2
import numpy as np

# IPP maps output rows to source rows with its own rounding: a coordinate this close to a
# whole row may be reached from the row before it (measured: exactly whole coordinates are).
_WHOLE_ROW_SLACK = 1e-3
# Rows are converted to float32 this many at a time, so the temporary stays a few MB.
_ROWS_PER_CHUNK = 64


def output_rows(source_rows: int, factor: float) -> int:
    """How many rows `cv2.resize(..., (0, 0), fx=factor, fy=factor)` makes: round to nearest
    (half to even, as OpenCV's saturate_cast<int>)."""
    return int(np.rint(source_rows * factor))


def rows_read(source_rows: int, factor: float) -> np.ndarray:
    """Sorted source rows a bilinear resize by `factor` reads (OpenCV's or IPP's).

    Output row d samples source coordinate y = (d + 0.5) / factor - 0.5, computed in double
    and rounded to float as OpenCV does, between rows floor(y) and floor(y) + 1 (clamped to
    the image). A y within `_WHOLE_ROW_SLACK` of a whole row adds its other neighbour, and the
    two first and two last rows are always included: IPP's border handling reads them.
    """
    d = np.arange(output_rows(source_rows, factor), dtype=np.float64)
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


def _untouched_float32(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed float32 array whose pages cost memory only once written.

    Private anonymous memory, with transparent huge pages turned off for it: with them, one
    written row would make the kernel back 2 MB around it, most of the rows never read.
    """
    size = int(np.prod(shape)) * 4
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None or size == 0:  # Windows: no private mappings; plain lazily-zeroed memory
        return np.zeros(shape, np.float32)
    buffer = mmap.mmap(-1, size, flags=flags)  # -1: anonymous
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buffer.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buffer, np.float32).reshape(shape)


def resize_as_float32(image: np.ndarray, factor: float) -> np.ndarray:
    """Exactly `cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)` (INTER_LINEAR),
    converting only the rows that resize reads (for a shrink; others convert it all)."""
    if factor >= 1:
        return cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)
    source = _untouched_float32(image.shape)
    rows = rows_read(image.shape[0], factor)
    for start in range(0, len(rows), _ROWS_PER_CHUNK):
        chunk = rows[start : start + _ROWS_PER_CHUNK]
        source[chunk] = image[chunk]  # uint8 to float32: exact, as np.float32()
    return cv2.resize(source, (0, 0), fx=factor, fy=factor)
