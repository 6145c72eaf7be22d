"""Paste restored faces back into the photo, each through a feathered mask, only over its region.

The official GPEN code warps every face and its mask over the whole image, keeps a running
maximum of the masks (a face takes a pixel where its mask is strictly larger than what is
there), then blends once: out = image * (1 - M) + faces * M. This module gives the same
result but touches only each face's bounding box, so the cost follows the faces' area, not
the photo's: a group photo with 30 faces in 8000x8000 pixels stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gpen_cli.stages.align import transformed_bounds

# The official mask: a rectangle inset by 26 px in a 512 crop, feathered by two blurs.
_MASK_BASE_SIZE = 512
_MASK_INSET = 26
_MASK_BLUR_KERNEL = (101, 101)
_MASK_BLUR_SIGMA = 11
# Bilinear sampling reaches one pixel past the crop's footprint; one more for safety.
_PASTE_MARGIN = 2
# 8-bit faces go into a 16-bit photo at the same brightness: 255 * 257 = 65535.
_SCALE_TO_16_BIT = 257


@dataclass
class Paste:
    """One restored face to put back: the crop, how it maps into the image, its mask."""

    crop: np.ndarray  # size x size x 3 uint8 BGR, in the frame `inverse` maps from
    inverse: np.ndarray  # 2x3, crop -> image
    mask: np.ndarray | None = None  # size x size float32 in [0, 1]; default_mask when None


@dataclass
class _Placed:
    """A face warped into its box of the image: box, face pixels, mask."""

    x0: int
    y0: int
    x1: int
    y1: int
    face: np.ndarray  # (y1 - y0) x (x1 - x0) x 3, the crop's dtype
    mask: np.ndarray  # (y1 - y0) x (x1 - x0) float32


@functools.lru_cache(maxsize=8)
def default_mask(size: int) -> np.ndarray:
    """The official feathered paste mask at `size` x `size` (float32 in [0, 1], read-only)."""
    mask = np.zeros((_MASK_BASE_SIZE, _MASK_BASE_SIZE), np.float32)
    far = _MASK_BASE_SIZE - _MASK_INSET
    cv2.rectangle(mask, (_MASK_INSET, _MASK_INSET), (far, far), 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, _MASK_BLUR_KERNEL, _MASK_BLUR_SIGMA)
    mask = cv2.GaussianBlur(mask, _MASK_BLUR_KERNEL, _MASK_BLUR_SIGMA)
    if size != _MASK_BASE_SIZE:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    mask.setflags(write=False)
    return mask


def _place(paste: Paste, width: int, height: int) -> _Placed | None:
    """Warp one face and its mask into the box of the image it covers; None if off-image."""
    crop_h, crop_w = paste.crop.shape[:2]
    if paste.crop.dtype != np.uint8 or paste.crop.ndim != 3 or paste.crop.shape[2] != 3:
        raise ValueError(
            f"a face crop must be HxWx3 uint8, got {paste.crop.shape} {paste.crop.dtype}"
        )
    mask = default_mask(crop_w) if paste.mask is None else paste.mask.astype(np.float32)
    if mask.shape != (crop_h, crop_w):
        mask = cv2.resize(mask, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR)
    inverse = np.asarray(paste.inverse, dtype=np.float64)
    box = transformed_bounds(inverse, crop_w, crop_h, width, height, _PASTE_MARGIN)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    to_box = inverse.copy()
    to_box[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warp = functools.partial(
        cv2.warpAffine, M=to_box, dsize=size, flags=cv2.INTER_LINEAR, borderValue=0
    )
    return _Placed(x0, y0, x1, y1, face=warp(paste.crop), mask=warp(mask))


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


def paste_faces(image: np.ndarray, pastes: Sequence[Paste]) -> np.ndarray:
    """A copy of `image` (HxWx3 uint8 or uint16) with every face blended in through its mask.

    Pixels no mask reaches are returned bit-identical; a 16-bit image keeps its depth (8-bit
    faces are scaled by 257). Overlapping faces: per pixel, the face with the larger mask.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"paste needs an HxWx3 uint8 or uint16 image, got {image.shape} {image.dtype}"
        )
    height, width = image.shape[:2]
    face_scale = np.float32(_SCALE_TO_16_BIT if image.dtype == np.uint16 else 1)
    top = np.iinfo(image.dtype).max
    out = image.copy()
    placed = [_place(paste, width, height) for paste in pastes]
    for index, face in enumerate(placed):
        if face is None:
            continue
        wins = _winning_pixels(index, face, placed)
        m = face.mask[:, :, None]
        pixels = face.face.astype(np.float32) * face_scale
        original = image[face.y0 : face.y1, face.x0 : face.x1].astype(np.float32)
        blended = np.clip(np.rint(original * (1 - m) + pixels * m), 0, top).astype(image.dtype)
        np.copyto(out[face.y0 : face.y1, face.x0 : face.x1], blended, where=wins[:, :, None])
    return out
