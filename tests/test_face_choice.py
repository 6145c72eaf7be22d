"""Choosing the faces to restore: the others keep the input's pixels, byte for byte, and the
report says why each was left."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from faces_fixture import FixedDetector, face_at, synthetic_photo

from gpen_cli.core.config import ConfigError, RestoreConfig
from gpen_cli.pipeline import resolve
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.choose import reading_order


def footprint(restorer: FaceRestorer, photo: np.ndarray) -> np.ndarray:
    """Where the chosen faces' crops land when warped back: the only pixels a paste writes."""
    prepared = restorer.prepare(photo)
    ones = np.ones((restorer.size, restorer.size), np.uint8)
    covered = np.zeros(photo.shape[:2], bool)
    for alignment in prepared.alignments:
        covered |= cv2.warpAffine(ones, alignment.inverse, photo.shape[1::-1]) > 0
    return covered


def test_reading_order_is_left_to_right_then_top_to_bottom():
    faces = [face_at(300, 10, 50), face_at(10, 200, 50), face_at(10, 10, 50)]
    assert reading_order(faces) == [2, 1, 0]


def test_unchosen_faces_keep_the_input_pixels(tiny_checkpoint):
    photo = synthetic_photo()
    restorer = FaceRestorer(
        str(tiny_checkpoint), FixedDetector(), mask="rect", device="cpu", faces="0,2"
    )
    result = restorer.restore(photo.copy())
    covered = footprint(restorer, photo)

    assert np.array_equal(result.image[~covered], photo[~covered])
    assert not np.array_equal(result.image[covered], photo[covered])  # the chosen ones changed
    x1, y1, x2, y2 = (int(v) for v in result.items[2].box)  # detection order: face 2 is index 1
    assert not covered[y1:y2, x1:x2].any()
    assert np.array_equal(result.image[y1:y2, x1:x2], photo[y1:y2, x1:x2])
    by_index = sorted(result.items, key=lambda item: item.index)
    assert [item.restored for item in by_index] == [True, False, True]
    assert by_index[1].why == "not among faces 0, 2"


def test_largest_restores_only_the_largest_faces(tiny_checkpoint):
    for count, chosen in ((1, [True, False, False]), (2, [True, False, True])):
        restorer = FaceRestorer(
            str(tiny_checkpoint), FixedDetector(), mask="rect", device="cpu", largest=count
        )
        items = sorted(restorer.restore(synthetic_photo()).items, key=lambda item: item.index)
        assert [item.restored for item in items] == chosen
    assert items[1].why == "not among the 2 largest faces"


@pytest.mark.slow
def test_person_restores_only_the_faces_like_the_reference(
    tmp_path, tiny_checkpoint, score_weights_dir
):
    """The reference photo's face is found by the same detector (its largest face: index
    0, whose crop is the photo's own), so that face matches and no other does."""
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), synthetic_photo())
    restorer = FaceRestorer(
        str(tiny_checkpoint),
        FixedDetector(),
        mask="rect",
        device="cpu",
        weights_dir=score_weights_dir,
        person=str(reference),
        min_similarity=0.999,
    )
    items = sorted(restorer.restore(synthetic_photo()).items, key=lambda item: item.index)
    assert [item.restored for item in items] == [True, False, False]
    assert items[1].why.startswith("similarity ")
    assert items[1].why.endswith("to the reference person is below 1.00")


@pytest.mark.parametrize(
    ("settings", "setting", "words"),
    [
        ({"faces": "0,x"}, "faces", "face indices separated by commas"),
        ({"faces": "-1"}, "faces", "0 or more"),
        ({"largest": 0}, "largest", "at least 1"),
        ({"faces": "0", "largest": 1}, "largest", "cannot be combined with faces"),
        ({"only_center_face": True, "faces": "0"}, "faces", "only_center_face"),
        ({"aligned": True, "largest": 1}, "largest", "aligned crops"),
        ({"review_below": 2.0}, "review_below", "between -1 and 1"),
    ],
)
def test_choice_settings_are_checked_naming_the_setting(settings, setting, words):
    with pytest.raises(ConfigError) as caught:
        RestoreConfig(**settings)
    assert caught.value.setting == setting and words in str(caught.value)


def test_a_missing_reference_photo_is_refused_by_the_resolver_not_the_configuration():
    config = RestoreConfig(person="/no/such/reference.jpg")  # values only: no file looked at
    with pytest.raises(ConfigError) as caught:
        resolve.check(config)
    assert caught.value.setting == "person" and "no such file" in str(caught.value)
