"""Resize a whole image (--short-edge) and back, for uint8/uint16 and 1, 3 or 4 channels.

Enlarging uses Lanczos (sharpest for upsampling); shrinking uses pixel-area averaging,
because Lanczos' fixed 8×8 kernel aliases fine detail once the factor passes about 2.
"""

from __future__ import annotations

import cv2
import numpy as np

from gpen_cli.core.defaults import DEFAULT_MAX_PIXELS
from gpen_cli.core.errors import InputError


def resize_short_edge(image: np.ndarray, short_edge: int) -> tuple[np.ndarray, float]:
    """Scale so the shorter side is exactly `short_edge` px, aspect kept to rounding.

    Returns the image and the factor applied (new short side / old short side); the image
    itself comes back untouched when its short side already has that length. An enlargement
    past the decoder's pixel limit (a long, thin photo) raises InputError before allocating.
    """
    if short_edge < 1:
        raise ValueError(f"short_edge must be at least 1, got {short_edge}")
    height, width = image.shape[:2]
    scale = short_edge / min(height, width)
    if scale == 1.0:
        return image, 1.0
    if height <= width:
        size = (max(1, round(width * scale)), short_edge)
    else:
        size = (short_edge, max(1, round(height * scale)))
    if scale > 1 and size[0] * size[1] > DEFAULT_MAX_PIXELS:
        raise InputError(
            f"short edge {short_edge} would enlarge this {width}×{height} photo to "
            f"{size[0]}×{size[1]} px ({size[0] * size[1] / 1e6:.0f} MP), more than the "
            f"{DEFAULT_MAX_PIXELS / 1e6:.0f} MP limit; use a smaller short edge"
        )
    return resize_to(image, *size), scale


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image at exactly width×height (e.g. back to its original size)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(image, (width, height), interpolation=interpolation)
