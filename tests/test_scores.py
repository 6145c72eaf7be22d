"""Per-face scores: facexlib's own networks give the same numbers, the properties that hold
with seeded weights, the report's fields, and nothing loaded when no score is asked for.

Each scored face costs two ArcFace IR-SE50 and two hyperIQA forwards (about 2 CPU-seconds),
so the tests score one or two faces.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from faces_fixture import FixedDetector, synthetic_photo
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.score import FaceScorer, IdentityEmbedder, QualityAssessor


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)


def facexlib_embedding(network, image: np.ndarray) -> np.ndarray:
    """facexlib's recipe for arcface_ir_se50, one crop at a time."""
    from facexlib.utils.misc import img2tensor
    from torchvision.transforms.functional import normalize

    image = cv2.resize(image, (112, 112), interpolation=cv2.INTER_LINEAR)
    tensor = img2tensor(image / 255.0, bgr2rgb=True, float32=True)
    normalize(tensor, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
    with torch.no_grad():
        return network(tensor.unsqueeze(0))[0].numpy()


def facexlib_quality(network, image: np.ndarray) -> float:
    """facexlib's hyperIQA recipe (inference_hyperiqa.py), the centre crop for the random."""
    import torchvision.transforms as T
    from PIL import Image

    recipe = T.Compose(
        [
            T.Resize((512, 384)),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )
    with torch.no_grad():
        return float(network(recipe(Image.fromarray(image[..., ::-1])).unsqueeze(0)).item())


@pytest.mark.slow
def test_scores_equal_facexlibs_own_networks_on_the_same_crops(score_weights_dir):
    from facexlib.assessment.hyperiqa_net import HyperIQA
    from facexlib.recognition.arcface_arch import Backbone

    arcface_file = score_weights_dir / "recognition_arcface_ir_se50.pth"
    iqa_file = score_weights_dir / "assessment_hyperIQA.pth"
    arcface = Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").eval()
    arcface.load_state_dict(torch.load(arcface_file), strict=True)
    iqa = HyperIQA(16, 112, 224, 112, 56, 28, 14, 7)
    iqa.hypernet.load_state_dict(torch.load(iqa_file))
    iqa.eval()

    before, after = crop(1), crop(2)  # another "person": a different crop
    [score] = FaceScorer(IdentityEmbedder(arcface_file), QualityAssessor(iqa_file))(
        [before], [after]
    )

    expected = float(
        np.dot(facexlib_embedding(arcface, before), facexlib_embedding(arcface, after))
    )
    assert score.identity == pytest.approx(expected, abs=1e-5)
    assert score.identity < 0.99
    assert score.quality_before == pytest.approx(facexlib_quality(iqa, before), abs=1e-5)
    assert score.quality_after == pytest.approx(facexlib_quality(iqa, after), abs=1e-5)


@pytest.mark.slow
def test_a_face_restored_from_itself_scores_identity_one(tiny_checkpoint, score_weights_dir):
    """Fidelity weight 0 pastes the input crop back: the scored crop is the input's own."""
    restorer = FaceRestorer(
        str(tiny_checkpoint),
        FixedDetector(),
        mask="rect",
        device="cpu",
        weights_dir=score_weights_dir,
        fidelity_weight=0.0,
        score=True,
        faces="2",
    )
    items = restorer.restore(synthetic_photo()).items
    [scored] = [item for item in items if item.restored]
    assert scored.identity == pytest.approx(1.0, abs=1e-4)
    assert scored.quality_before == scored.quality_after


def test_no_scoring_network_is_built_without_the_settings(tiny_checkpoint, monkeypatch):
    """Neither registry builder runs for a plain restore, nor for choosing by index."""

    def refuse(*args, **kwargs):
        raise AssertionError("a scoring network was built")

    monkeypatch.setattr("gpen_cli.stages.score.IdentityEmbedder", refuse)
    monkeypatch.setattr("gpen_cli.stages.score.QualityAssessor", refuse)
    for settings in ({}, {"faces": "1"}):
        restorer = FaceRestorer(
            str(tiny_checkpoint), FixedDetector(), mask="rect", device="cpu", **settings
        )
        items = restorer.restore(synthetic_photo()).items
        assert len(items) == 3
        assert all(item.identity is None and item.quality_after is None for item in items)


@pytest.mark.slow
def test_the_report_lists_every_face_with_scores_and_review(
    tmp_path, tiny_checkpoint, score_weights_dir, monkeypatch
):
    monkeypatch.setattr(
        "gpen_cli.pipeline.resolve.load_detector", lambda config, device: FixedDetector()
    )
    photo = tmp_path / "group.png"
    cv2.imwrite(str(photo), synthetic_photo())
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["restore", str(photo), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint),
         "--weights-dir", str(score_weights_dir), "--device", "cpu", "--mask", "rect",
         "--faces", "1", "--review-below", "0.99", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(report.read_text())
    assert document["schema_version"] == 3
    [entry] = document["results"]
    items = entry["faces"]["items"]
    assert [item["index"] for item in items] == [0, 1, 2]
    assert [item["box"][0] for item in items] == [20.0, 230.0, 420.0]  # left to right
    assert [item["restored"] for item in items] == [False, True, False]
    assert items[0]["why"] == "not among faces 1" and items[1]["why"] is None
    assert items[0]["identity"] is None and items[0]["quality_before"] is None
    identity = items[1]["identity"]
    assert -1 <= identity < 0.99  # a random GPEN changes the face
    assert isinstance(items[1]["quality_before"], float)
    assert isinstance(items[1]["quality_after"], float)
    assert entry["faces"]["count"] == 3 and len(entry["faces"]["boxes"]) == 3
    assert entry["review"] is True
    assert entry["review_reasons"] == [f"face 1: identity {identity:.2f} below 0.99"]
    summary = document["summary"]
    assert summary["review"] == 1
    assert summary["lowest_identity"] == {"input": str(photo), "face": 1, "identity": identity}
    assert "1 photo to review" in result.output
