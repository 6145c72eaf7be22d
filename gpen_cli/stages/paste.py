"""Paste restored faces back into the photo, each through its mask, only over its region.

The official GPEN code warps every face and its mask over the whole image, keeps a running
maximum of the masks (a face takes a pixel where its mask is strictly larger than what is
there), then blends once: out = image * (1 - M) + faces * M. This module gives the same
result, bit for bit, but touches only each face's bounding box, so the cost follows the
faces' area, not the photo's: a group photo with 30 faces in 8000x8000 pixels stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gpen_cli.stages.align import transformed_bounds

# OpenCV's fixed-point warp: coordinates in 1/1024 px, bilinear weights in 1/32 px steps.
_AB_BITS = 10
_INTER_BITS = 5
_INTER_TAB_SIZE = 1 << _INTER_BITS
_ROUND_DELTA = (1 << _AB_BITS) // _INTER_TAB_SIZE // 2
# Bilinear sampling reaches one pixel past the crop's footprint; one more for safety.
_PASTE_MARGIN = 2
# 8-bit faces go into a 16-bit photo at the same brightness: 255 * 257 = 65535.
_SCALE_TO_16_BIT = 257
# Rows of a face's box warped or blended at a time: a few MB of temporaries for any face.
_STRIP_ROWS = 128


@dataclass
class Paste:
    """One restored face to put back: the crop, how it maps into the image, its mask."""

    crop: np.ndarray  # size x size x 3 uint8 BGR, in the frame `inverse` maps from
    inverse: np.ndarray  # 2x3, crop -> image
    mask: np.ndarray  # float32 in [0, 1], resized to the crop's size when it differs


@dataclass
class _Placed:
    """A face warped into its box of the image: box, face pixels, mask."""

    x0: int
    y0: int
    x1: int
    y1: int
    face: np.ndarray  # (y1 - y0) x (x1 - x0) x 3, the crop's dtype
    mask: np.ndarray  # (y1 - y0) x (x1 - x0) float32


def warp_region(
    image: np.ndarray, matrix: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The `box` (x0, y0, x1, y1) of `cv2.warpAffine(image, matrix, ..., INTER_LINEAR)`, exactly.

    OpenCV inverts the 2x3 matrix in double precision, then maps each output pixel to the
    input in fixed point (1/1024 px, rounded to 1/32 px interpolation steps) with per-row and
    per-column terms computed from absolute output coordinates. Warping a smaller canvas
    with a shifted matrix moves those roundings, so it differs from the whole-image warp by
    a grey level here and there. Building the same fixed-point map for the box and handing
    it to `cv2.remap` (which warpAffine itself calls) reproduces the whole-image result.
    The map is built `_STRIP_ROWS` rows at a time: at 8 bytes a coordinate, a whole map for a
    face thousands of pixels wide would cost more than the face.
    """
    m = [float(v) for v in np.asarray(matrix, dtype=np.float64).ravel()]
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    i0, i1, i3, i4 = m[4] * det, m[1] * -det, m[3] * -det, m[0] * det
    i2, i5 = -i0 * m[2] - i1 * m[5], -i3 * m[2] - i4 * m[5]
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    scale = float(1 << _AB_BITS)
    x_step = np.rint(i0 * xs * scale).astype(np.int64)
    y_step = np.rint(i3 * xs * scale).astype(np.int64)
    x_row = np.rint((i1 * ys + i2) * scale).astype(np.int64) + _ROUND_DELTA
    y_row = np.rint((i4 * ys + i5) * scale).astype(np.int64) + _ROUND_DELTA
    out = np.empty((y1 - y0, x1 - x0, *image.shape[2:]), image.dtype)
    for top in range(0, y1 - y0, _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        whole, fraction = _fixed_point_map(x_row[rows], y_row[rows], x_step, y_step)
        cv2.remap(
            image,
            whole,
            fraction,
            cv2.INTER_LINEAR,
            dst=out[rows],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out


def _fixed_point_map(
    x_row: np.ndarray, y_row: np.ndarray, x_step: np.ndarray, y_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """warpAffine's remap tables for some rows: whole pixels (int16 x, y) and the 1/32 px
    interpolation step index, from per-row and per-column fixed-point terms."""
    shift = _AB_BITS - _INTER_BITS
    fx = (x_row[:, None] + x_step[None, :]) >> shift
    fy = (y_row[:, None] + y_step[None, :]) >> shift
    table = _INTER_TAB_SIZE - 1
    whole = np.stack([fx >> _INTER_BITS, fy >> _INTER_BITS], axis=-1)
    whole = np.clip(whole, -32768, 32767).astype(np.int16)
    fraction = ((fy & table) * _INTER_TAB_SIZE + (fx & table)).astype(np.uint16)
    return whole, fraction


def _place(paste: Paste, width: int, height: int) -> _Placed | None:
    """Warp one face and its mask into the box of the image it covers; None if off-image."""
    crop_h, crop_w = paste.crop.shape[:2]
    if paste.crop.dtype != np.uint8 or paste.crop.ndim != 3 or paste.crop.shape[2] != 3:
        raise ValueError(
            f"a face crop must be HxWx3 uint8, got {paste.crop.shape} {paste.crop.dtype}"
        )
    mask = paste.mask.astype(np.float32)
    if mask.shape != (crop_h, crop_w):
        mask = cv2.resize(mask, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR)
    inverse = np.asarray(paste.inverse, dtype=np.float64)
    box = transformed_bounds(inverse, crop_w, crop_h, width, height, _PASTE_MARGIN)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    face, mask = (warp_region(pixels, inverse, box) for pixels in (paste.crop, mask))
    return _Placed(x0, y0, x1, y1, face=face, mask=mask)


def _winning_pixels(index: int, me: _Placed, placed: Sequence[_Placed | None]) -> np.ndarray:
    """Where face `me` (number `index`) holds the running-maximum mask once every face is in.

    Faces are taken in order and a later one takes a pixel only with a strictly larger
    mask, so a face wins where it beats every earlier face and ties or beats every later one.
    """
    wins = me.mask > 0
    for other_index, other in enumerate(placed):
        if other is None or other_index == index:
            continue
        ox0, oy0 = max(me.x0, other.x0), max(me.y0, other.y0)
        ox1, oy1 = min(me.x1, other.x1), min(me.y1, other.y1)
        if ox0 >= ox1 or oy0 >= oy1:
            continue
        mine = me.mask[oy0 - me.y0 : oy1 - me.y0, ox0 - me.x0 : ox1 - me.x0]
        theirs = other.mask[oy0 - other.y0 : oy1 - other.y0, ox0 - other.x0 : ox1 - other.x0]
        beats = mine > theirs if other_index < index else mine >= theirs
        wins[oy0 - me.y0 : oy1 - me.y0, ox0 - me.x0 : ox1 - me.x0] &= beats
    return wins


def paste_faces(
    image: np.ndarray, pastes: Sequence[Paste], *, in_place: bool = False
) -> np.ndarray:
    """A copy of `image` (HxWx3 uint8 or uint16) with every face blended in through its mask.

    Pixels no mask reaches are returned bit-identical; a 16-bit image keeps its depth (8-bit
    faces are scaled by 257). Overlapping faces: per pixel, the face with the larger mask.
    `in_place` writes into `image` itself and returns it, sparing a copy of the photo, with
    the same result: a pixel is written once, by the one face that wins it, so a face that
    reads a pixel an earlier face wrote does not win it and drops what it made of it.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"paste needs an HxWx3 uint8 or uint16 image, got {image.shape} {image.dtype}"
        )
    height, width = image.shape[:2]
    out = image if in_place else image.copy()
    placed = [_place(paste, width, height) for paste in pastes]
    for index, face in enumerate(placed):
        if face is not None:
            _blend_into(out, image, face, _winning_pixels(index, face, placed))
    return out


def _blend_into(out: np.ndarray, image: np.ndarray, face: _Placed, wins: np.ndarray) -> None:
    """out = image * (1 - mask) + face * mask over the face's winning pixels, in float32 as
    the official, `_STRIP_ROWS` rows at a time (the float copies of a whole large face's box
    would cost several times the face)."""
    face_scale = np.float32(_SCALE_TO_16_BIT if image.dtype == np.uint16 else 1)
    top = np.iinfo(image.dtype).max
    for start in range(0, face.y1 - face.y0, _STRIP_ROWS):
        rows = slice(start, start + _STRIP_ROWS)
        region = (slice(face.y0 + start, min(face.y0 + start + _STRIP_ROWS, face.y1)),)
        region += (slice(face.x0, face.x1),)
        m = face.mask[rows, :, None]
        pixels = face.face[rows].astype(np.float32) * face_scale
        original = image[region].astype(np.float32)
        blended = np.clip(np.rint(original * (1 - m) + pixels * m), 0, top).astype(image.dtype)
        np.copyto(out[region], blended, where=wins[rows, :, None])
