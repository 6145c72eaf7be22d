"""Steady faces: the 5 landmarks of each tracked face filtered over time.

A detector finds each frame's landmarks afresh, a pixel or two off every time; the aligned
crop follows them, so the restored face shimmers at its edges. A one-euro filter (Casiez,
Roussel and Vogel, CHI 2012) smooths each point strongly while the face holds still and
hardly at all while it moves, so smoothing does not drag behind a turning head.

Faces are followed from frame to frame by box overlap. A face that is lost, and every face
at a scene cut (the picture changes as a whole), starts again unfiltered.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cv2
import numpy as np

from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage
from gpen_cli.stages.faces import Face

MIN_CUTOFF_HZ = 1.0  # cutoff of a face holding still: strong smoothing
BETA = 4.0  # cutoff added per face-width a second of movement
DERIVATIVE_CUTOFF_HZ = 1.0
MATCH_IOU = 0.3  # a box overlapping the last one this much is the same face
CUT_DIFFERENCE = 25.0  # mean grey-level change of a 32×32 thumbnail that marks a scene cut


def _alpha(cutoff, rate: float):
    """The exponential smoothing factor of a first-order low-pass at `cutoff` Hz."""
    return 1.0 / (1.0 + rate / (2.0 * math.pi * cutoff))


@dataclass
class _Track:
    box: np.ndarray
    points: np.ndarray  # filtered landmarks, (5, 2)
    speed: np.ndarray  # filtered derivative, (5, 2), px per second


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class LandmarkSmoother:
    """Filters the landmarks of faces seen in consecutive frames of a film.

    Call `start_frame` with each frame in order, then `smooth` with its faces (at most once;
    a frame where `smooth` is not called had no face, and every track is dropped).
    """

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._tracks: list[_Track] = []
        self._thumbnail: np.ndarray | None = None
        self._smoothed = True  # whether the frame before called smooth()

    def reset(self) -> None:
        """Forget every face: the next frame starts a new, independent stretch."""
        self._tracks, self._thumbnail, self._smoothed = [], None, True

    def start_frame(self, image: np.ndarray) -> None:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        thumbnail = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        cut = (
            self._thumbnail is not None
            and float(np.abs(thumbnail - self._thumbnail).mean()) > CUT_DIFFERENCE
        )
        if cut or not self._smoothed:
            self._tracks = []
        self._thumbnail = thumbnail
        self._smoothed = False

    def smooth(self, faces: list[Face]) -> list[Face]:
        """The faces with their landmarks filtered; tracks not seen again are dropped."""
        self._smoothed = True
        pairs = sorted(
            (
                (_iou(face.box, track.box), f, t)
                for f, face in enumerate(faces)
                for t, track in enumerate(self._tracks)
            ),
            reverse=True,
        )
        matched: dict[int, _Track] = {}
        used: set[int] = set()
        for overlap, f, t in pairs:
            if overlap < MATCH_IOU:
                break
            if f not in matched and t not in used:
                matched[f] = self._tracks[t]
                used.add(t)
        tracks, smoothed = [], []
        for f, face in enumerate(faces):
            track = matched.get(f)
            if track is None:
                track = _Track(face.box, face.landmarks.copy(), np.zeros_like(face.landmarks))
            else:
                self._step(track, face)
            tracks.append(track)
            smoothed.append(replace(face, landmarks=track.points.copy()))
        self._tracks = tracks
        return smoothed

    def _step(self, track: _Track, face: Face) -> None:
        speed = (face.landmarks - track.points) * self.rate
        track.speed += _alpha(DERIVATIVE_CUTOFF_HZ, self.rate) * (speed - track.speed)
        # Movement in face widths a second, so the filter behaves alike for near and far faces.
        size = max(face.width, 1.0)
        cutoff = MIN_CUTOFF_HZ + BETA * np.linalg.norm(track.speed, axis=1, keepdims=True) / size
        track.points = track.points + _alpha(cutoff, self.rate) * (face.landmarks - track.points)
        track.box = face.box


@dataclass
class SmoothLandmarks:
    """The prepare stage that smooths each frame's final landmarks along their tracks."""

    smoother: LandmarkSmoother
    name: str = "smooth"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        self.smoother.start_frame(work.working)
        work.faces = self.smoother.smooth(work.faces)


@contextmanager
def smoothed_landmarks(restorer: FaceRestorer, rate: float) -> Iterator[LandmarkSmoother]:
    """Within the block, `restorer` smooths the final landmarks of the faces it prepares
    across frames (a stage just before alignment); it must be given the frames of one film
    in order, from one thread."""
    smoother = LandmarkSmoother(rate)
    stage = SmoothLandmarks(smoother)
    restorer.add_stage(stage, before="align")
    try:
        yield smoother
    finally:
        restorer.remove_stage(stage)
