"""Per-face identity and quality scores, so a user can find the faces a restoration changed.

`identity` is the cosine similarity of ArcFace (IR-SE50) embeddings of a face's aligned
input crop and of its restored crop (after the fidelity blend, before paste): near 1 when
the restored face is still the same person. `quality_before` / `quality_after` are hyperIQA's
no-reference quality of the same two crops. Both networks are facexlib's own, fed as
facexlib feeds them:

- ArcFace: the crop resized to 112 px (bilinear), BGR to RGB, x / 255 then (x - 0.5) / 0.5
  (facexlib's recognition helper for `arcface_ir_se50`); the output is L2-normalised.
- hyperIQA: the crop as a PIL image through torchvision's Resize((512, 384)), a 224 px crop,
  ToTensor and the ImageNet normalisation (facexlib's `inference_hyperiqa.py`), except that
  the crop is the centre one: facexlib averages 10 random crops, which would make a score
  change from run to run and cost ten forwards.

Both run in the forward step over the whole batch of faces (inputs and outputs together),
in the precision `half` picks, in bounded chunks so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from gpen_cli.core.devices import pick_dtype
from gpen_cli.stages.blend import blend_fidelity
from gpen_cli.stages.chain import RestoredFace, soften_small_face
from gpen_cli.stages.faces import FaceScores
from gpen_cli.weights.checkpoints import load_strict, read_state_dict, seeded

ARCFACE_SIZE = 112
ARCFACE_LAYERS, ARCFACE_DROP, ARCFACE_MODE = 50, 0.6, "ir_se"  # facexlib's 'arcface'
# facexlib's init_assessment_model('hypernet'): HyperIQA(16, 112, 224, 112, 56, 28, 14, 7).
HYPERIQA_LAYOUT = (16, 112, 224, 112, 56, 28, 14, 7)
IQA_RESIZE = (512, 384)  # height, width, as facexlib's hyperIQA recipe
IQA_CROP = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Crops per network call: bounded so a photo of 50 faces does not hold 100 activations.
SCORE_CHUNK = 8


def random_arcface(seed: int) -> torch.nn.Module:
    """facexlib's ArcFace IR-SE50 with seeded random weights (a registry random_init)."""
    from facexlib.recognition.arcface_arch import Backbone

    with seeded(seed):
        return Backbone(num_layers=ARCFACE_LAYERS, drop_ratio=ARCFACE_DROP, mode=ARCFACE_MODE)


def random_hyperiqa(seed: int) -> torch.nn.Module:
    """facexlib's hyperIQA hyper network (what its published file holds), seeded."""
    from facexlib.assessment.hyperiqa_net import HyperIQA

    with seeded(seed):
        return HyperIQA(*HYPERIQA_LAYOUT).hypernet


def arcface_input(crops: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 BGR crops → N×3×112×112 float32 RGB in [-1, 1], as facexlib prepares them."""
    size = (ARCFACE_SIZE, ARCFACE_SIZE)
    resized = [cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR) for crop in crops]
    batch = np.stack(resized)[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(((batch - 0.5) / 0.5).transpose(0, 3, 1, 2))


def hyperiqa_input(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 BGR crops → N×3×224×224 float32, as facexlib's hyperIQA recipe (centre crop)."""
    import torchvision.transforms.functional as tf
    from PIL import Image

    tensors = []
    for crop in crops:
        image = Image.fromarray(np.ascontiguousarray(crop[..., ::-1]))
        image = tf.center_crop(tf.resize(image, list(IQA_RESIZE)), [IQA_CROP, IQA_CROP])
        tensors.append(tf.normalize(tf.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD))
    return torch.stack(tensors)


class IdentityEmbedder:
    """ArcFace IR-SE50 embeddings (unit vectors) of aligned face crops."""

    def __init__(self, weights_path: Path, device: torch.device | str = "cpu", half: bool = False):
        from facexlib.recognition.arcface_arch import Backbone

        self.device = torch.device(device)
        self.dtype = pick_dtype(self.device, half)
        network = Backbone(num_layers=ARCFACE_LAYERS, drop_ratio=ARCFACE_DROP, mode=ARCFACE_MODE)
        what = "ArcFace recognition state dict"
        load_strict(network, read_state_dict(Path(weights_path), what), str(weights_path), what)
        self.network = network.eval().requires_grad_(False).to(self.device, self.dtype)

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """N×512 float32 unit embeddings."""
        out = []
        for start in range(0, len(crops), SCORE_CHUNK):
            batch = torch.from_numpy(arcface_input(crops[start : start + SCORE_CHUNK]))
            out.append(self.network(batch.to(self.device, self.dtype)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)


class QualityAssessor:
    """hyperIQA quality (0 to 100, higher is better) of face crops."""

    def __init__(self, weights_path: Path, device: torch.device | str = "cpu", half: bool = False):
        from facexlib.assessment.hyperiqa_net import HyperIQA

        self.device = torch.device(device)
        self.dtype = pick_dtype(self.device, half)
        network = HyperIQA(*HYPERIQA_LAYOUT)
        what = "hyperIQA state dict"
        state = read_state_dict(Path(weights_path), what)
        load_strict(network.hypernet, state, str(weights_path), what)
        self.network = network.eval().requires_grad_(False).to(self.device, self.dtype)

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """N float64 quality scores."""
        out = []
        for start in range(0, len(crops), SCORE_CHUNK):
            batch = hyperiqa_input(crops[start : start + SCORE_CHUNK])
            scores = self.network(batch.to(self.device, self.dtype))
            out.append(scores.float().reshape(-1).cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.sum(a * b, axis=-1) / np.maximum(norms, 1e-12)


@dataclass
class FaceScorer:
    """Identity and quality of restored crops against their input crops."""

    embedder: IdentityEmbedder
    assessor: QualityAssessor

    def __call__(
        self, inputs: Sequence[np.ndarray], restored: Sequence[np.ndarray]
    ) -> list[FaceScores]:
        both = [*inputs, *restored]
        count = len(inputs)
        embeddings = self.embedder(both)
        quality = self.assessor(both)
        identity = cosine(embeddings[:count], embeddings[count:])
        return [
            FaceScores(float(identity[i]), float(quality[i]), float(quality[count + i]))
            for i in range(count)
        ]


def as_pasted(face: RestoredFace, fidelity_weight: float) -> np.ndarray:
    """The restored crop as the finish step will paste it: softened when the face is small,
    then blended with its input crop (the same functions as the blend stage)."""
    image = soften_small_face(face.image, face.face) if face.face is not None else face.image
    return blend_fidelity(image, face.source, fidelity_weight)


@dataclass
class Score:
    """Each restored face's identity and quality scores (the forward step's last stage)."""

    scorer: FaceScorer
    fidelity_weight: float
    name: str = "score"
    uses_torch: bool = True

    def __call__(self, faces: list[RestoredFace]) -> None:
        if not faces:
            return
        pasted = [as_pasted(face, self.fidelity_weight) for face in faces]
        scores = self.scorer([face.source for face in faces], pasted)
        for face, score in zip(faces, scores, strict=True):
            face.scores = score
