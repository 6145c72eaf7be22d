"""The record a detector hands to the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `gpen --help` and the report read this module without NumPy
    import numpy as np


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    `landmarks` is a (5, 2) float64 array of (x, y): left eye, right eye, nose tip,
    left mouth corner, right mouth corner (left/right as seen in the picture).
    """

    box: np.ndarray  # (4,) float64: x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2) float64

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by `factor`."""
        return Face(self.box * factor, self.score, self.landmarks * factor)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True)
class FaceScores:
    """How far a restored face is from its input: ArcFace cosine similarity of the two
    crops (`identity`, 1 = the same embedding) and hyperIQA's quality of each (0 to 100)."""

    identity: float
    quality_before: float
    quality_after: float


@dataclass(frozen=True)
class FaceChoice:
    """Whether one detected face is restored: `index` is its place in reading order (left to
    right by box centre, ties top to bottom), the label reports and choices use; `why` says
    why it is left as it was (None when it is restored)."""

    index: int
    face: Face
    why: str | None = None

    @property
    def restored(self) -> bool:
        return self.why is None


@dataclass
class FaceItem:
    """One face found in a photo, as the report lists it (pipeline/report.py says each field)."""

    index: int
    box: list[float]
    score: float
    restored: bool = True
    why: str | None = None
    identity: float | None = None
    quality_before: float | None = None
    quality_after: float | None = None
