"""A synthetic photo of three 'faces' and a detector that always finds them: the face choice
and scoring tests need faces at known places, not a real detector."""

from __future__ import annotations

import numpy as np

# (x, y, side) of each face box, in detection order; reading order is 1, 2, 0 (left to right).
BOXES = ((420, 60, 90), (20, 40, 130), (230, 120, 70))


def synthetic_photo() -> np.ndarray:
    """A 640×300 smooth random BGR picture (seed 5)."""
    import cv2

    rng = np.random.default_rng(5)
    return cv2.GaussianBlur(rng.integers(0, 256, (300, 640, 3), dtype=np.uint8), (9, 9), 3)


def face_at(x: float, y: float, side: float):
    from gpen_cli.stages.faces import Face

    points = [(0.32, 0.42), (0.68, 0.42), (0.5, 0.6), (0.36, 0.78), (0.64, 0.78)]
    landmarks = np.array([[x + px * side, y + py * side] for px, py in points])
    return Face(np.array([x, y, x + side, y + side], float), 0.99, landmarks)


class FixedDetector:
    """Finds the three BOXES in any picture."""

    def detect(self, image_bgr):
        return [face_at(*box) for box in BOXES]
