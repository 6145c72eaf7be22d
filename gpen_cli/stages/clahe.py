"""Optional contrast equalisation of a face crop before restoration (--clahe).

Faded or low-contrast old photos give the generator little to work from; CLAHE on the
lightness channel alone lifts local contrast without shifting colours.
"""

from __future__ import annotations

import cv2
import numpy as np


def apply_clahe(
    crop_bgr_uint8: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)
) -> np.ndarray:
    """The crop with CLAHE applied to the L channel of Lab; a and b are left as they were."""
    crop = crop_bgr_uint8
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"CLAHE needs an HxWx3 uint8 BGR crop, got {crop.shape} {crop.dtype}")
    lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=tuple(tile_grid))
    lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
