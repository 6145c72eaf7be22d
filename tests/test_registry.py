"""The registry: which entry a checkpoint file is, told from its tensors; registration
refusing a taken name; random stand-ins that load like the real files."""

from __future__ import annotations

import pytest
import torch

from gpen_cli.core.errors import GpenError
from gpen_cli.stages.detect import RetinaFaceDetector
from gpen_cli.weights import download, install, registry, store


@pytest.fixture
def mobile_weights(tmp_path):
    """RetinaFace-MobileNet random weights under a name the registry does not know."""
    path = tmp_path / "my_detector.pth"
    torch.save(registry.MODELS["retinaface-mobile"].random_init(0).state_dict(), path)
    return path


def test_a_detector_file_is_built_as_the_entry_its_tensors_are(mobile_weights):
    detector = download.load_model(mobile_weights, "detector", device="cpu")
    assert isinstance(detector, RetinaFaceDetector)
    assert detector._model.backbone == "mobilenet0.25"


def test_weights_add_identifies_a_renamed_file_from_its_tensors(mobile_weights, tmp_path):
    assert install.identify(mobile_weights).name == "retinaface-mobile"
    # Told apart, then checked as that entry: random weights are not the published file.
    with pytest.raises(GpenError, match="bytes, but retinaface-mobile has 1789735"):
        install.add(mobile_weights, tmp_path / "folder")
    assert not (tmp_path / "folder").exists()


def test_a_file_no_entry_recognises_is_refused_in_one_line(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(GpenError) as caught:
        registry.spec_for_file(path, "detector")
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot tell which face detector this file is")
    assert "retinaface-mobile" in message and "\n" not in message
    (tmp_path / "x.onnx").write_bytes(b"\x08\x07")
    assert registry.spec_for_file(tmp_path / "x.onnx", "detector").name == "yunet"


def test_registering_a_taken_name_alias_or_file_is_refused():
    base = registry.MODELS["yunet"]
    for clash, changes in (
        ("the name 'yunet' is yunet's", {"filename": "new.onnx"}),
        (
            "the name 'RetinaFace' is retinaface-resnet50's",
            {"name": "new", "aliases": ("RetinaFace",)},
        ),
        ("face_detection_yunet.onnx is yunet's file", {"name": "new"}),
    ):
        spec = registry.ModelSpec(**{**base.__dict__, **changes})
        with pytest.raises(GpenError, match=clash):
            registry.register(spec)
    assert "new" not in registry.MODELS


@pytest.mark.slow
def test_random_stand_ins_load_like_the_real_files(tmp_path):
    spec = registry.MODELS["realesrnet_x2"]
    path = store.write_random_weights(spec, tmp_path, seed=1)
    assert path.name == spec.filename
    assert download.load_model(path, "upsampler").scale == 2
    again = store.write_random_weights(spec, tmp_path / "again", seed=1)
    assert path.read_bytes() == again.read_bytes()  # seeded: the same file every time
    with pytest.raises(GpenError, match="yunet has no random initialisation"):
        store.write_random_weights(registry.MODELS["yunet"], tmp_path, seed=1)
