"""Fidelity blend of a restored crop with the crop it came from (--fidelity-weight).

GPEN's alpha: 1 keeps the restoration, 0 gives the original back, values between trade
detail invented by the generator for faithfulness to the photo.
"""

from __future__ import annotations

import cv2
import numpy as np


def blend_fidelity(restored: np.ndarray, original: np.ndarray, weight: float) -> np.ndarray:
    """weight * restored + (1 - weight) * original, rounded to the nearest integer level.

    Computed by `cv2.addWeighted`, as the official code does, so every weight gives the
    official pixels; exact at the ends: weight 1 returns `restored`, weight 0 `original`.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fidelity weight must be between 0 and 1, got {weight}")
    if restored.shape != original.shape or restored.dtype != original.dtype:
        raise ValueError(
            f"restored and original crops differ: {restored.shape} {restored.dtype} "
            f"vs {original.shape} {original.dtype}"
        )
    return cv2.addWeighted(restored, weight, original, 1.0 - weight, 0.0)
