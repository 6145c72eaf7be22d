"""Face detection stage: real detectors on real photos, checkpoint safety, landmark reduction."""

from __future__ import annotations

import builtins
import pickle

import cv2
import numpy as np
import pytest
import torch
from conftest import shared_file

from gpen_cli.config import DetectorName
from gpen_cli.errors import CheckpointError, GpenError, WeightsMissingError
from gpen_cli.stages.detect import (
    FanLandmarks,
    RetinaFaceDetector,
    YuNetDetector,
    heatmaps_to_points,
    landmarks68_to_5,
)
from gpen_cli.stages.faces import Face
from gpen_cli.weights import get_spec, load_model

MOBILE_WEIGHTS = "assets/weights/detection_mobilenet0.25_Final.pth"
YUNET_WEIGHTS = "assets/weights/face_detection_yunet.onnx"


def _image(name: str) -> np.ndarray:
    image = cv2.imread(str(shared_file(f"assets/images/{name}")), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture(scope="module")
def retinaface() -> RetinaFaceDetector:
    return RetinaFaceDetector(shared_file(MOBILE_WEIGHTS), network="mobile0.25")


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector(shared_file(YUNET_WEIGHTS))


def _assert_plausible_upright(faces: list[Face]) -> None:
    """Every face: points inside its box, eyes ordered left to right, eyes above the mouth."""
    for face in faces:
        points = face.landmarks
        assert points.shape == (5, 2) and points.dtype == np.float64
        assert np.all(points >= face.box[:2]) and np.all(points <= face.box[2:])
        left_eye, right_eye, nose, left_mouth, right_mouth = points
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < max(left_mouth[1], right_mouth[1])
        assert max(left_eye[1], right_eye[1]) < min(left_mouth[1], right_mouth[1])


def test_retinaface_finds_the_solvay_faces(retinaface):
    faces = retinaface.detect(_image("solvay_conference_1927.png"))
    assert 27 <= len(faces) <= 31  # 29 people in the photo
    scores = [face.score for face in faces]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.9
    _assert_plausible_upright(faces)


def test_retinaface_finds_the_single_portrait_face(retinaface):
    faces = retinaface.detect(_image("portrait_small.jpg"))
    assert len(faces) == 1
    _assert_plausible_upright(faces)


@pytest.mark.parametrize("name", ["ffhq_00000_hq.png", "ffhq_00001_hq.png", "ffhq_00001_lq.png"])
def test_nested_duplicates_are_kept_as_the_official_unless_asked(retinaface, yunet, name):
    # RetinaFace also scores a shifted box over these faces at 0.91-0.97: the official
    # pipeline restores both, so the default does too; --drop-nested keeps the better one.
    image = _image(name)
    faces = retinaface.detect(image)
    assert len(faces) == 2 and faces[0].score >= faces[1].score
    unnested = RetinaFaceDetector(shared_file(MOBILE_WEIGHTS), drop_nested=True).detect(image)
    assert len(unnested) == 1 and unnested[0].width > 300
    np.testing.assert_array_equal(unnested[0].box, faces[0].box)
    _assert_plausible_upright(unnested)
    yunet_faces = yunet.detect(image)
    assert len(yunet_faces) == 1
    distances = np.linalg.norm(yunet_faces[0].landmarks - faces[0].landmarks, axis=1)
    assert distances.max() < 0.1 * faces[0].width, distances


def test_min_face_size_drops_only_smaller_faces(retinaface):
    image = _image("solvay_conference_1927.png")
    every_face = retinaface.detect(image)
    large = RetinaFaceDetector(shared_file(MOBILE_WEIGHTS), min_face_size=38).detect(image)
    expected = [face for face in every_face if min(face.width, face.height) >= 38]
    assert 0 < len(large) < len(every_face)
    np.testing.assert_allclose([f.box for f in large], [f.box for f in expected])


def test_photos_over_1500_px_are_detected_at_1000_px_as_the_official(retinaface):
    image = _image("portrait_small.jpg")
    original = retinaface.detect(image)[0]
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 2080 px tall
    faces = retinaface.detect(big)
    assert len(faces) == 1
    # The official steps, written out: float image resized by 1000 / long side (bilinear),
    # detected there, coordinates divided back in float32.
    factor = 1000.0 / max(big.shape[:2])
    small = cv2.resize(np.float32(big), (0, 0), fx=factor, fy=factor)
    with torch.inference_mode():
        rows = retinaface._model.detect_faces(small, 0.9, 0.4, True).astype(np.float32) / factor
    np.testing.assert_array_equal(faces[0].box, rows[0, :4])
    np.testing.assert_array_equal(faces[0].landmarks, rows[0, 5:15].reshape(5, 2))
    np.testing.assert_allclose(faces[0].box / 4, original.box, atol=0.1 * original.width)
    # Up to 1500 px the photo is detected at its own size.
    at_limit = cv2.resize(image, None, fx=1500 / 520, fy=1500 / 520)
    with torch.inference_mode():
        direct = retinaface._model.detect_faces(np.float32(at_limit), 0.9, 0.4, True)
    np.testing.assert_array_equal(retinaface.detect(at_limit)[0].box, direct[0, :4])


def test_yunet_agrees_with_retinaface_on_the_portrait(retinaface, yunet):
    image = _image("portrait_small.jpg")
    reference = retinaface.detect(image)[0]
    faces = yunet.detect(image)
    assert len(faces) == 1
    _assert_plausible_upright(faces)
    distances = np.linalg.norm(faces[0].landmarks - reference.landmarks, axis=1)
    assert distances.max() < 0.1 * reference.width, distances
    assert distances[:2].max() < 10, distances  # eyes within a few pixels


@pytest.mark.parametrize("detector_fixture", ["retinaface", "yunet"])
def test_noise_has_no_faces_and_grey_photos_still_work(detector_fixture, request):
    detector = request.getfixturevalue(detector_fixture)
    noise = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    grey = cv2.cvtColor(_image("portrait_small.jpg"), cv2.COLOR_BGR2GRAY)
    assert len(detector.detect(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))) == 1


def test_detectors_refuse_non_bgr_arrays(retinaface):
    with pytest.raises(ValueError, match="uint8"):
        retinaface.detect(np.zeros((64, 64, 3), dtype=np.float32))


class _RunsCode:
    def __reduce__(self):
        return (print, ("x",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"body.weight": _RunsCode()}, protocol=2))
    calls = []
    monkeypatch.setattr(builtins, "print", lambda *args, **kwargs: calls.append(args))
    with pytest.raises(CheckpointError, match="refused") as error:
        RetinaFaceDetector(path)
    assert calls == []
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_files_that_are_not_retinaface_state_dicts_are_refused(tmp_path):
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="not a RetinaFace mobile0.25 state dict"):
        RetinaFaceDetector(tensor_file)

    text_file = tmp_path / "notes.pth"
    text_file.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        RetinaFaceDetector(text_file)

    with pytest.raises(WeightsMissingError, match="not found"):
        RetinaFaceDetector(tmp_path / "absent.pth")


def test_weights_of_the_other_backbone_are_refused_in_one_line():
    with pytest.raises(CheckpointError, match="not a RetinaFace resnet50 state dict") as error:
        RetinaFaceDetector(shared_file(MOBILE_WEIGHTS), network="resnet50")
    assert "missing: " in str(error.value) and "\n" not in str(error.value)


def test_module_prefix_is_stripped(tmp_path):
    state = torch.load(shared_file(MOBILE_WEIGHTS), map_location="cpu", weights_only=True)
    wrapped = tmp_path / "data_parallel.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, wrapped)
    assert len(RetinaFaceDetector(wrapped).detect(_image("portrait_small.jpg"))) == 1


def test_yunet_refuses_a_file_that_is_not_onnx():
    with pytest.raises(CheckpointError, match="YuNet"):
        YuNetDetector(shared_file(MOBILE_WEIGHTS))


def test_landmarks68_to_5_takes_eye_centres_nose_tip_and_mouth_corners():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 500, (68, 2))
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = 5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points[36:42] = (100, 120) + ring
    points[42:48] = (160, 118) + ring
    points[30] = (131, 160)
    points[48], points[54] = (108, 190), (152, 191)
    np.testing.assert_allclose(
        landmarks68_to_5(points),
        [(100, 120), (160, 118), (131, 160), (108, 190), (152, 191)],
        atol=1e-9,
    )
    with_depth = np.concatenate([points, rng.uniform(size=(68, 1))], axis=1)
    np.testing.assert_allclose(landmarks68_to_5(with_depth), landmarks68_to_5(points))
    with pytest.raises(ValueError, match="68"):
        landmarks68_to_5(points[:67])


@pytest.mark.slow
def test_heatmap_decoding_matches_face_alignment():
    from face_alignment.utils import get_preds_fromhm  # numba-compiled on first call

    rng = np.random.default_rng(2)
    heatmaps = rng.random((3, 68, 64, 64)).astype(np.float32)
    heatmaps[0, 0] = 0
    heatmaps[0, 0, 0, 5] = 1  # a peak on the border gets no quarter-pixel step
    centers = rng.uniform(100, 300, (3, 2))
    scales = rng.uniform(0.5, 3.0, 3)
    ours = heatmaps_to_points(heatmaps, centers, scales)
    theirs = np.stack(
        [
            get_preds_fromhm(heatmaps[i : i + 1], centers[i], float(scales[i]))[1][0]
            for i in range(3)
        ]
    )
    # face-alignment truncates its points to whole pixels; ours keep the fraction.
    np.testing.assert_array_equal(np.trunc(ours), theirs)


@pytest.fixture(scope="module")
def random_fan_file(tmp_path_factory):
    """A one-stack FAN with seeded random weights: real 2D-FAN weights are not on this machine."""
    from face_alignment.models import FAN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fan") / "fan1.pth"
    torch.save(FAN(1).state_dict(), path)
    return path


def test_fan_refine_replaces_only_the_landmarks(retinaface, random_fan_file):
    image = _image("portrait_small.jpg")
    faces = retinaface.detect(image)
    refiner = FanLandmarks(random_fan_file)
    refined = refiner.refine(image, faces)
    assert refiner.refine(image, []) == []
    assert len(refined) == 1
    np.testing.assert_array_equal(refined[0].box, faces[0].box)
    assert refined[0].score == faces[0].score
    points = refined[0].landmarks
    assert points.shape == (5, 2) and np.all(np.isfinite(points))
    # Whatever random weights predict lies in FAN's crop: 200 * (w + h) / 165 px around the face.
    half_side = 100 * (faces[0].width + faces[0].height) / 165
    centre = (faces[0].box[:2] + faces[0].box[2:]) / 2
    assert np.all(np.abs(points - centre) <= half_side + faces[0].height * 0.12 + 1)


def test_fan_refuses_a_detector_checkpoint():
    with pytest.raises(CheckpointError, match="2D-FAN"):
        FanLandmarks(shared_file(MOBILE_WEIGHTS))


def test_the_registry_lists_the_detector_choices_for_an_unknown_name():
    with pytest.raises(GpenError) as error:
        load_model("dlib", "detector")
    message = str(error.value)
    assert "'dlib'" in message
    assert all(name in message for name in ("retinaface-resnet50", "retinaface-mobile", "yunet"))
    # every detector the configuration accepts has a registry entry
    assert {get_spec(name.value, "detector").name for name in DetectorName} == {
        "retinaface-resnet50",
        "retinaface-mobile",
        "yunet",
    }


@pytest.mark.parametrize("name", ["retinaface-mobile", "yunet"])
def test_the_registry_builds_detectors_from_a_weights_folder(name):
    weights_dir = shared_file(MOBILE_WEIGHTS).parent
    image = _image("portrait_small.jpg")
    assert len(load_model(name, "detector", weights_dir).detect(image)) == 1
    # Options reach the constructor: no face in this photo is 500 px wide.
    assert load_model(name, "detector", weights_dir, min_face_size=500).detect(image) == []
