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

import numpy as np

from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage
from gpen_cli.stages.faces import Face
from gpen_cli.video.tracks import SceneCuts, match_boxes

MIN_CUTOFF_HZ = 1.0  # cutoff of a face holding still: strong smoothing
BETA = 4.0  # cutoff added per face-width a second of movement
DERIVATIVE_CUTOFF_HZ = 1.0


def _alpha(cutoff, rate: float):
    """The exponential smoothing factor of a first-order low-pass at `cutoff` Hz."""
    return 1.0 / (1.0 + rate / (2.0 * math.pi * cutoff))


@dataclass
class _Track:
    box: np.ndarray
    points: np.ndarray  # filtered landmarks, (5, 2)
    speed: np.ndarray  # filtered derivative, (5, 2), px per second


class LandmarkSmoother:
    """Filters the landmarks of faces seen in consecutive frames of a film.

    Call `start_frame` with each frame in order, then `smooth` with its faces (at most once;
    a frame where `smooth` is not called had no face, and every track is dropped).
    """

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._tracks: list[_Track] = []
        self._cuts = SceneCuts()
        self._smoothed = True  # whether the frame before called smooth()

    def reset(self) -> None:
        """Forget every face: the next frame starts a new, independent stretch."""
        self._tracks, self._smoothed = [], True
        self._cuts.reset()

    def start_frame(self, image: np.ndarray) -> None:
        if self._cuts.cut(image) or not self._smoothed:
            self._tracks = []
        self._smoothed = False

    def smooth(self, faces: list[Face]) -> list[Face]:
        """The faces with their landmarks filtered; tracks not seen again are dropped."""
        self._smoothed = True
        pairs = match_boxes([face.box for face in faces], [track.box for track in self._tracks])
        matched = {f: self._tracks[t] for f, t in pairs.items()}
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
