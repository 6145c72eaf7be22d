"""Choosing the faces to restore: by index, the largest ones, or one person.

Faces are numbered in reading order (left to right by box centre, ties top to bottom), the
order reports list them in. The numbers only label faces: the chosen ones are still restored
and pasted in the detector's order, as the official pipeline does (where two faces overlap,
the order decides the pixels). A face not chosen goes to no network and is not pasted, so its
pixels stay exactly the input's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gpen_cli.core.errors import GpenError
from gpen_cli.stages.chain import Align, Detect, PreparedImage, RestoredFace
from gpen_cli.stages.faces import Face, FaceChoice, FaceItem

if TYPE_CHECKING:
    from gpen_cli.core.config import RestoreConfig
    from gpen_cli.stages.detect import Detector

# A rule gives, for each face in detection order (with its reading-order index), why it is
# not restored, or None when it is.
Rule = Callable[[PreparedImage, list[int]], list[str | None]]


def reading_order(faces: Sequence[Face]) -> list[int]:
    """Each face's index (faces in detection order) when sorted left to right by box centre
    x, ties top to bottom by centre y, ties by detection order."""
    centres = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces]
    ranked = sorted(range(len(faces)), key=lambda k: (centres[k][0], centres[k][1], k))
    index = [0] * len(faces)
    for place, k in enumerate(ranked):
        index[k] = place
    return index


def by_index(chosen: Sequence[int]) -> Rule:
    """Only the faces whose reading-order index is in `chosen`."""
    wanted = set(chosen)
    listed = ", ".join(map(str, sorted(wanted)))

    def rule(work: PreparedImage, indices: list[int]) -> list[str | None]:
        return [None if index in wanted else f"not among faces {listed}" for index in indices]

    return rule


def largest(count: int) -> Rule:
    """Only the `count` faces with the largest boxes (ties: the lower index)."""

    def rule(work: PreparedImage, indices: list[int]) -> list[str | None]:
        areas = [face.width * face.height for face in work.faces]
        ranked = sorted(range(len(areas)), key=lambda k: (-areas[k], indices[k]))
        kept = set(ranked[:count])
        why = f"not among the {count} largest faces" if count > 1 else "not the largest face"
        return [None if k in kept else why for k in range(len(areas))]

    return rule


@dataclass(eq=False)  # compared as objects: the reference is an array
class SamePerson:
    """Only the faces whose ArcFace embedding (of the aligned crop) has a cosine similarity
    of at least `minimum` with the reference face's. A class, not a closure, so a film can
    follow the person from frame to frame with the same embedder and reference."""

    embed: Callable[[Sequence[np.ndarray]], np.ndarray]
    reference: np.ndarray
    minimum: float

    def similarities(self, work: PreparedImage) -> list[float]:
        """Each face's similarity to the reference, in detection order."""
        from gpen_cli.stages.score import cosine

        if not work.crops:
            return []
        return [float(v) for v in cosine(self.embed(work.crops), self.reference[None, :])]

    def why(self, similarity: float) -> str | None:
        """None when a face this similar is the person, else why it is left."""
        if similarity >= self.minimum:
            return None
        return f"similarity {similarity:.2f} to the reference person is below {self.minimum:.2f}"

    def __call__(self, work: PreparedImage, indices: list[int]) -> list[str | None]:
        return [self.why(value) for value in self.similarities(work)]


def reference_embedding(
    path: str | Path,
    detector: Detector,
    size: int,
    embed: Callable[[Sequence[np.ndarray]], np.ndarray],
) -> np.ndarray:
    """The ArcFace embedding of the face in a reference photo, found and aligned as the
    photos' faces are (the same detector, the same crop); the largest face when it has
    several. GpenError naming the file when it cannot be read or shows no face."""
    from gpen_cli.stages.load import load_image

    work = PreparedImage(load_image(Path(path)).pixels, source=str(path))
    Detect(detector)(work)
    if not work.faces:
        raise GpenError(f"{path}: no face found in the reference photo of the person")
    Align(size)(work)
    areas = [face.width * face.height for face in work.faces]
    return embed([work.crops[int(np.argmax(areas))]])[0]


@dataclass
class ChooseFaces:
    """Keep only the chosen faces in the photo's work; record every face found, and why
    one is left as it was, in `work.choices`."""

    rule: Rule
    uses_torch: bool = False  # True when the rule runs a network
    name: str = "choose"

    def __call__(self, work: PreparedImage) -> None:
        indices = reading_order(work.faces)
        verdicts = self.rule(work, indices)
        work.choices = [
            FaceChoice(index, face, why)
            for index, face, why in zip(indices, work.faces, verdicts, strict=True)
        ]
        kept = [k for k, why in enumerate(verdicts) if why is None]
        work.faces = [work.faces[k] for k in kept]
        work.alignments = [work.alignments[k] for k in kept]
        work.crops = [work.crops[k] for k in kept]
        work.model_inputs = [work.model_inputs[k] for k in kept]


def every_face(work: PreparedImage) -> list[FaceChoice]:
    """Every face found in the photo, in detection order, with whether it was restored."""
    if work.choices:
        return work.choices
    return [FaceChoice(i, f) for i, f in zip(reading_order(work.faces), work.faces, strict=True)]


def rule_for(
    config: RestoreConfig,
    detector: Detector | None,
    size: int,
    embed: Callable[[Sequence[np.ndarray]], np.ndarray] | None,
) -> Rule | None:
    """The configuration's way of choosing faces (None: every face is restored). For a
    person, the reference photo is read and its face embedded here, once."""
    if config.faces is not None:
        return by_index(config.faces)
    if config.largest is not None:
        return largest(config.largest)
    if config.person is None or detector is None or embed is None:
        return None
    reference = reference_embedding(config.person, detector, size, embed)
    return SamePerson(embed, reference, config.min_similarity)


def face_items(
    work: PreparedImage, restored: Sequence[RestoredFace], scale: float
) -> list[FaceItem]:
    """Every face found, for the report, in detection order, in the input's pixels (`scale`:
    working resolution / input resolution), with the scores of the restored ones."""
    scores = iter([face.scores for face in restored])
    items = []
    for choice in every_face(work):
        scored = next(scores) if choice.restored else None
        items.append(
            FaceItem(
                index=choice.index,
                box=[round(float(v) / scale, 2) for v in choice.face.box],
                score=round(float(choice.face.score), 4),
                restored=choice.restored,
                why=choice.why,
                identity=None if scored is None else round(scored.identity, 4),
                quality_before=None if scored is None else round(scored.quality_before, 3),
                quality_after=None if scored is None else round(scored.quality_after, 3),
            )
        )
    return items
