"""The ETA of `gpen batch`: from faces, moving with the clock, blind to skipped files."""

from __future__ import annotations

import cv2
import numpy as np

from gpen_cli.batch import plan_layout
from gpen_cli.batch.engine import PhotoProgress
from gpen_cli.batch.scan import count_work
from gpen_cli.cli.eta import EtaColumn, FaceEstimate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def restore(estimate: FaceEstimate, name: str, faces: int, written: int) -> None:
    """One photo through the engine's stages; `written`: the run's faces written after it."""
    estimate(PhotoProgress(name, "started"))
    estimate(PhotoProgress(name, "found", faces))
    estimate(PhotoProgress(name, "restored", faces, faces))
    estimate(PhotoProgress(name, "done", faces, faces_done=written, status="ok"))


def test_a_photo_of_many_faces_left_is_most_of_the_time_left():
    clock = Clock()
    estimate = FaceEstimate(clock)
    estimate.total = 11
    for index in range(10):
        clock.now += 1.0
        restore(estimate, f"p{index}.jpg", 1, index + 1)
    estimate(PhotoProgress("solvay.png", "started"))
    estimate(PhotoProgress("solvay.png", "found", 29))
    # Ten faces in ten seconds, 29 to go; one photo in eleven is not 9 % of the time left.
    assert estimate.seconds_left() == 29.0
    estimate(PhotoProgress("solvay.png", "restored", 29, 8))
    clock.now += 4.0  # 18 faces in 14 s, 21 to go
    assert estimate.seconds_left() == 21 * 14 / 18
    assert estimate.faces_per_second() == 18 / 14


def test_the_estimate_moves_with_the_clock_while_nothing_ends():
    clock = Clock()
    estimate = FaceEstimate(clock)
    estimate.total = 3
    clock.now = 2.0
    restore(estimate, "a.jpg", 2, 2)
    estimate(PhotoProgress("b.jpg", "found", 2))
    assert estimate.seconds_left() == 4.0  # 4 faces (2 found, 2 expected), 1 s each
    clock.now = 32.0  # thirty seconds on the same photo: it is slower than it seemed
    assert estimate.seconds_left() == 64.0
    assert EtaColumn(estimate).render(None).plain == "ETA 0:01:04"


def test_a_resumed_run_counts_only_the_photos_it_restores():
    clock = Clock()
    estimate = FaceEstimate(clock)
    for index in range(385):  # done by the stopped run: skipped in no time
        estimate(PhotoProgress(f"d{index}.jpg", "done", status="skipped"))
    estimate.total = 15
    assert estimate.seconds_left() is None  # nothing restored yet: no figure to tell
    assert EtaColumn(estimate).render(None).plain == "ETA -:--:--"
    clock.now = 2.0
    restore(estimate, "n0.jpg", 1, 1)
    assert estimate.photos_done == 1
    assert estimate.seconds_left() == 28.0  # 14 photos of one face at 2 s each, not 0:00:01


def test_photos_without_faces_still_take_their_time():
    clock = Clock()
    estimate = FaceEstimate(clock)
    estimate.total = 10
    clock.now = 1.0
    restore(estimate, "face.jpg", 1, 1)
    for index in range(4):  # faceless photos: no face left to expect, yet each took a second
        clock.now += 1.0
        estimate(PhotoProgress(f"empty{index}.jpg", "found", 0))
        estimate(PhotoProgress(f"empty{index}.jpg", "done", faces_done=1, status="no_face"))
    assert estimate.seconds_left() == 5.0  # five photos left at a second each


def test_the_ray_engine_telling_only_ends_gives_the_same_figures():
    clock = Clock()
    estimate = FaceEstimate(clock)
    estimate.total = 4
    clock.now = 6.0
    estimate(PhotoProgress("a.jpg", "done", 3, faces_done=3, status="ok"))
    assert estimate.faces_restored == 3
    assert estimate.seconds_left() == 3 * 3 * 6.0 / 3  # 3 photos at 3 faces, 2 s a face


def test_the_total_leaves_out_files_that_are_not_images_and_photos_done(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png", "done.png"):
        cv2.imwrite(str(source / name), np.zeros((8, 8, 3), np.uint8))
    (source / "notes.txt").write_text("not a photo")
    (source / "sub" / "Thumbs.db").write_bytes(b"\0")
    out.mkdir()
    (out / "done.png").write_bytes(b"written by a stopped run")
    layout = plan_layout(source, out)
    assert count_work(layout) == 3
    assert count_work(layout, overwrite=True) == 4
    assert count_work(layout, recursive=False) == 2
    assert count_work(layout, pattern="*.png") == 2
