"""Following faces through a film: which face of this frame is which of the last, and
where the picture changes as a whole (a scene cut), so nothing follows across it.

Shared by the landmark smoother and the person chooser, so the two agree on what a track is.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MATCH_IOU = 0.3  # a box overlapping the last one this much is the same face
CUT_DIFFERENCE = 25.0  # mean grey-level change of a 32×32 thumbnail that marks a scene cut


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """The intersection over union of two (x1, y1, x2, y2) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(boxes: Sequence[np.ndarray], last: Sequence[np.ndarray]) -> dict[int, int]:
    """Which of `last` (the previous frame's boxes) each of `boxes` continues: the pairs
    overlapping at least MATCH_IOU, best overlap first, each box in at most one pair."""
    pairs = sorted(
        ((box_iou(box, old), b, o) for b, box in enumerate(boxes) for o, old in enumerate(last)),
        reverse=True,
    )
    matched: dict[int, int] = {}
    used: set[int] = set()
    for overlap, b, o in pairs:
        if overlap < MATCH_IOU:
            break
        if b not in matched and o not in used:
            matched[b] = o
            used.add(o)
    return matched


class SceneCuts:
    """Tells, frame by frame in order, whether the picture changed as a whole since the
    frame before (the first frame after `reset` is no cut)."""

    def __init__(self) -> None:
        self._thumbnail: np.ndarray | None = None

    def reset(self) -> None:
        self._thumbnail = None

    def cut(self, image: np.ndarray) -> bool:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        thumbnail = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        last, self._thumbnail = self._thumbnail, thumbnail
        return last is not None and float(np.abs(thumbnail - last).mean()) > CUT_DIFFERENCE
