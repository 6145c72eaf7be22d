"""One person through a film: a face chosen as the person stays chosen along its track.

Frame by frame, ArcFace's similarity to the reference dips when the head turns or the
picture blurs; chosen on each frame alone, the person's face would be restored in one frame
and left in the next, and the restored face would flicker. So a face continuing the track of
a face chosen in the frame before (their boxes overlap, as the landmark smoother matches
faces) is chosen whatever its similarity; a face starting a track must match the reference.
A scene cut, or a frame where the track is lost, ends it. Photos never use this rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage
from gpen_cli.stages.choose import ChooseFaces, SamePerson
from gpen_cli.video.tracks import SceneCuts, match_boxes


class FollowPerson:
    """The person rule for the frames of one film, given in order from one thread."""

    def __init__(self, person: SamePerson) -> None:
        self.person = person
        self._cuts = SceneCuts()
        self._chosen: list[np.ndarray] = []  # boxes of the faces chosen in the frame before

    def reset(self) -> None:
        """Forget the track: the next frame starts a new, independent stretch."""
        self._cuts.reset()
        self._chosen = []

    def __call__(self, work: PreparedImage, indices: list[int]) -> list[str | None]:
        if self._cuts.cut(work.working):
            self._chosen = []
        boxes = [face.box for face in work.faces]
        followed = match_boxes(boxes, self._chosen)
        similarities = self.person.similarities(work)
        verdicts = [
            None if k in followed else self.person.why(value)
            for k, value in enumerate(similarities)
        ]
        self._chosen = [box for box, why in zip(boxes, verdicts, strict=True) if why is None]
        return verdicts


@contextmanager
def followed_person(restorer: FaceRestorer) -> Iterator[FollowPerson | None]:
    """Within the block, when `restorer` chooses faces by person, it follows the chosen
    face's track across frames (None, and nothing changed, when it does not); it must be
    given the frames of one film in order, from one thread."""
    stages = restorer.prepare_stages
    chooses = [isinstance(getattr(stage, "rule", None), SamePerson) for stage in stages]
    place = chooses.index(True) if any(chooses) else None
    if place is None:
        yield None
        return
    original = stages[place]
    follow = FollowPerson(original.rule)
    stage = ChooseFaces(follow, uses_torch=True)
    stages[place] = stage
    try:
        yield follow
    finally:  # other stages may have come or gone meanwhile: find this one again
        stages[stages.index(stage)] = original
