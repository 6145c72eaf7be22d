"""`gpen video --person` follows the chosen face's track: a face chosen in one frame stays
chosen while its box goes on overlapping, whatever its similarity, until the track is lost
or the scene cuts; photos are still chosen one by one.

The film is made here: a grey square (the "face", found by a stand-in detector) on a plain
background; a stand-in embedder turns a crop's brightness into an angle, so a bright square
is the reference person and a dark one is not (as a turned head scores low).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("av", minversion="18.1", reason="gpen video needs PyAV 18.1+")

from faces_fixture import face_at  # noqa: E402
from videoclips import make_film  # noqa: E402

from gpen_cli.pipeline import resolve  # noqa: E402
from gpen_cli.pipeline.restorer import FaceRestorer  # noqa: E402
from gpen_cli.video import VideoOptions, plan_video  # noqa: E402

SIDE = 50
# (background, square's grey, x, y) of each frame, and whether its face is the person's there:
# in the film, by track; as photos, by similarity alone.
FRAMES = [
    (128, 200, 30, 40),  # matches the reference
    (128, 60, 32, 41),  # below the threshold, box barely moved: the track goes on
    (128, 60, 33, 40),  # still on the track
    (128, 60, 100, 95),  # the box jumps away: the track is lost
    (128, 60, 30, 40),  # back in place, but a new track that does not match
    (128, 200, 30, 40),  # matches again
    (20, 60, 30, 40),  # scene cut: a new track, which does not match
]
IN_FILM = [1, 1, 1, 0, 0, 1, 0]
AS_PHOTOS = [1, 0, 0, 0, 0, 1, 0]


def picture(background: int, grey: int, x: int, y: int) -> np.ndarray:
    image = np.full((160, 160, 3), background, np.uint8)
    image[y : y + SIDE, x : x + SIDE] = grey
    return image


class SquareDetector:
    """Finds the square that differs from the background (the top-left pixel)."""

    def detect(self, image_bgr: np.ndarray) -> list:
        grey = image_bgr.astype(np.int16).mean(axis=2)
        rows, cols = np.nonzero(np.abs(grey - grey[0, 0]) > 30)
        if not len(rows):
            return []
        return [face_at(float(cols.min()), float(rows.min()), float(cols.max() - cols.min() + 1))]


def brightness_embedding(crops) -> np.ndarray:
    """A unit vector at an angle set by each crop's mean brightness."""
    angles = np.array([np.mean(crop) / 255.0 * np.pi for crop in crops])
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


@pytest.fixture
def person_restorer(tmp_path, tiny_checkpoint, monkeypatch) -> FaceRestorer:
    monkeypatch.setattr(
        resolve, "load_scoring", lambda config, device: (brightness_embedding, None)
    )
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), picture(*FRAMES[0]))
    return FaceRestorer(
        str(tiny_checkpoint),
        SquareDetector(),
        mask="rect",
        device="cpu",
        batch_size=2,
        person=str(reference),
        min_similarity=0.9,
    )


@pytest.mark.slow
def test_the_person_is_followed_along_the_track_in_a_film_not_in_photos(
    tmp_path: Path, person_restorer: FaceRestorer
):
    source = tmp_path / "film.mkv"
    frames = make_film(source, [picture(*frame) for frame in FRAMES], pix_fmt="bgr0", audio=None)
    stages = list(person_restorer.prepare_stages)

    restored: list[int] = []
    job = plan_video(source, tmp_path / "out.mkv", VideoOptions())
    job.run(person_restorer, on_frame=lambda frame: restored.append(frame.faces))

    assert restored == IN_FILM
    assert person_restorer.prepare_stages == stages  # the film's rule is gone again
    photos = [person_restorer.restore(frame) for frame in frames]
    assert [sum(item.restored for item in photo.items) for photo in photos] == AS_PHOTOS
    lost = photos[1].items[0]
    assert lost.why is not None and lost.why.endswith("to the reference person is below 0.90")
