"""FaceRestorer: the stages of `gpen_cli.stages` chained into one call.

`restore(image)` runs everything for one photo. `prepare`, `forward` and `finish` are the
same work in three steps, so a batch runner can send faces from several photos through the
generator together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from gpen_cli.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL, MAX_SHORT_EDGE
from gpen_cli.errors import GpenError
from gpen_cli.stages.align import Alignment, align_face, warp_crop
from gpen_cli.stages.blend import blend_fidelity
from gpen_cli.stages.clahe import apply_clahe
from gpen_cli.stages.detect import Detector, make_detector
from gpen_cli.stages.faces import Face
from gpen_cli.stages.forward import GpenForward, pick_device
from gpen_cli.stages.load import to_uint8
from gpen_cli.stages.mask import make_masker
from gpen_cli.stages.paste import Paste, paste_faces
from gpen_cli.stages.resize import resize_short_edge

SMALL_FACE_PX = 100


@dataclass
class FaceRecord:
    """One face as reported to the user, in the input image's pixel coordinates."""

    box: list[float]
    score: float
    landmarks: list[list[float]]

    @classmethod
    def from_face(cls, face: Face, scale: float) -> FaceRecord:
        return cls(
            box=[round(float(v) / scale, 2) for v in face.box],
            score=round(float(face.score), 4),
            landmarks=[
                [round(float(x) / scale, 2), round(float(y) / scale, 2)] for x, y in face.landmarks
            ],
        )


@dataclass
class PreparedImage:
    """A photo with its faces found and cropped, waiting for the generator."""

    image: np.ndarray  # the input, BGR uint8 or uint16, untouched
    scale: float  # working resolution / input resolution (--short-edge)
    faces: list[Face]  # in working coordinates
    alignments: list[Alignment]
    crops: list[np.ndarray]  # aligned input crops, uint8 BGR
    model_inputs: list[np.ndarray]  # what the generator gets (CLAHE applied when asked)


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list[FaceRecord]
    input_crops: list[np.ndarray] = field(default_factory=list)
    restored_crops: list[np.ndarray] = field(default_factory=list)


def resolve_model(
    model: str | Path | nn.Module, weights_dir: Path | None, device: Any
) -> nn.Module:
    """A module as is, a checkpoint path, or a registry name (downloaded when absent)."""
    from gpen_cli.models import load_gpen
    from gpen_cli.weights import MODELS, ensure_weight

    if isinstance(model, nn.Module):
        return model
    if str(model) in MODELS:
        if MODELS[str(model)].kind != "gpen":
            raise GpenError(f"{model} is a {MODELS[str(model)].kind} model, not a GPEN generator")
        return load_gpen(ensure_weight(str(model), weights_dir), device=device)
    path = Path(model)
    if not path.exists():
        gpen_names = ", ".join(name for name, spec in MODELS.items() if spec.kind == "gpen")
        raise GpenError(f"--model {model}: no such file, and not a known model ({gpen_names})")
    return load_gpen(path, device=device)


def center_face(faces: list[Face], width: int, height: int) -> list[Face]:
    """The face whose box centre is nearest the image centre."""
    if not faces:
        return faces
    centre = np.array([width / 2, height / 2])
    distances = [np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre) for face in faces]
    return [faces[int(np.argmin(distances))]]


class FaceRestorer:
    """Restore every face of a BGR photo with GPEN.

    `model` is a registry name (e.g. "GPEN-BFR-512"), a checkpoint path, or any module that
    maps N×3×S×S RGB in [-1, 1] to the same (S from `model.size` or `size=`). `detector` is a
    name such as "retinaface-mobile" (resolved through the weights folder) or an object with
    `detect(image_bgr) -> list[Face]`.
    """

    def __init__(
        self,
        model: str | Path | nn.Module = DEFAULT_MODEL,
        detector: str | Detector = DEFAULT_DETECTOR,
        *,
        size: int | None = None,
        weights_dir: str | Path | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        fidelity_weight: float = 1.0,
        clahe: bool = False,
        short_edge: int | None = None,
        keep_resized: bool = False,
        only_center_face: bool = False,
        min_face_size: float = 0,
        score_threshold: float = 0.9,
        max_detect_side: int = 1280,
        landmarks: str = "detector",
        mask: str = "auto",
        aligned: bool = False,
        half: bool | None = None,
        compile_model: bool = False,
        exact: bool = False,
    ):
        if not 0.0 <= fidelity_weight <= 1.0:
            raise GpenError(f"--fidelity-weight must be between 0 and 1, got {fidelity_weight}")
        if short_edge is not None and not 16 <= short_edge <= MAX_SHORT_EDGE:
            raise GpenError(
                f"--short-edge must be between 16 and {MAX_SHORT_EDGE} px, got {short_edge}"
            )
        weights_dir = Path(weights_dir) if weights_dir is not None else None
        try:
            torch_device = pick_device(device)
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0].removeprefix(f"--device {device}: ")
            raise GpenError(f"--device {device}: {reason}") from None
        self.forward = GpenForward(
            resolve_model(model, weights_dir, torch_device),
            size=size,
            device=torch_device,
            batch_size=batch_size,
            half=half,
            compile_model=compile_model,
            exact=exact,
            source=str(model) if not isinstance(model, nn.Module) else type(model).__name__,
        )
        self.size = self.forward.size
        self.fidelity_weight = fidelity_weight
        self.clahe = clahe
        self.short_edge = short_edge
        self.keep_resized = keep_resized
        self.only_center_face = only_center_face
        self.aligned = aligned
        self.masker = make_masker(mask, weights_dir, torch_device)
        self.detector: Detector | None = None
        self.refiner = None
        if not aligned:
            self.detector = (
                make_detector(
                    detector,
                    weights_dir,
                    device=str(torch_device),
                    score_threshold=score_threshold,
                    max_side=max_detect_side,
                    min_face_size=min_face_size,
                )
                if isinstance(detector, str)
                else detector
            )
            if landmarks == "fan":
                from gpen_cli.stages.detect import FanLandmarks
                from gpen_cli.weights import ensure_weight

                self.refiner = FanLandmarks(
                    ensure_weight("fan-2d", weights_dir), device=str(torch_device)
                )
            elif landmarks != "detector":
                raise GpenError(f"--landmarks must be 'detector' or 'fan', got {landmarks!r}")

    # ------------------------------------------------------------------ one photo, three steps

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """Detect, align and crop the faces of a BGR uint8/uint16 photo."""
        if self.detector is None:
            raise GpenError("this restorer was made for aligned crops: use restore_aligned()")
        working, scale = image, 1.0
        if self.short_edge:
            working, scale = resize_short_edge(image, self.short_edge)
        working8 = to_uint8(working)
        faces = self.detector.detect(working8)
        if self.only_center_face:
            faces = center_face(faces, working8.shape[1], working8.shape[0])
        if self.refiner is not None and faces:
            faces = self.refiner.refine(working8, faces)
        alignments = [align_face(face.landmarks, self.size) for face in faces]
        crops = [warp_crop(working8, alignment) for alignment in alignments]
        inputs = [apply_clahe(crop) for crop in crops] if self.clahe else crops
        return PreparedImage(image, scale, faces, alignments, crops, inputs)

    def finish(self, prepared: PreparedImage, restored: list[np.ndarray]) -> RestoreResult:
        """Blend each restored face with its input crop and paste it back into the photo."""
        # As the official pipeline does, soften faces that were small in the photo: GPEN's
        # detail would otherwise alias when the crop is shrunk back.
        softened = [
            cv2.GaussianBlur(face, (3, 3), 0)
            if min(info.width, info.height) < SMALL_FACE_PX
            else face
            for face, info in zip(restored, prepared.faces, strict=True)
        ]
        blended = [
            blend_fidelity(face, crop, self.fidelity_weight)
            for face, crop in zip(softened, prepared.crops, strict=True)
        ]
        masks = self.masker(restored)
        target, to_target, record_scale = prepared.image, 1.0 / prepared.scale, prepared.scale
        if self.keep_resized and prepared.scale != 1.0:
            target, _ = resize_short_edge(prepared.image, self.short_edge)
            to_target, record_scale = 1.0, 1.0
        pastes = [
            Paste(face, alignment.inverse * to_target, mask)
            for face, alignment, mask in zip(blended, prepared.alignments, masks, strict=True)
        ]
        image = paste_faces(target, pastes)
        records = [FaceRecord.from_face(face, record_scale) for face in prepared.faces]
        return RestoreResult(image, records, prepared.crops, blended)

    def restore(self, image: np.ndarray) -> RestoreResult:
        """Restore every face of a BGR photo (uint8 or uint16); the rest is left untouched."""
        prepared = self.prepare(image)
        return self.finish(prepared, self.forward(prepared.model_inputs))

    def restore_aligned(self, face: np.ndarray) -> RestoreResult:
        """Restore a photo that is already an aligned face crop, at the model's size."""
        prepared = self.prepare_aligned(face)
        return self.finish_aligned(prepared, self.forward(prepared.model_inputs))

    def prepare_aligned(self, face: np.ndarray) -> PreparedImage:
        """An aligned face crop resized to the model's size: one crop, no detection."""
        face8 = to_uint8(face)
        if face8.shape[:2] != (self.size, self.size):
            shrinking = face8.shape[0] > self.size
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
            face8 = cv2.resize(face8, (self.size, self.size), interpolation=interpolation)
        model_input = apply_clahe(face8) if self.clahe else face8
        return PreparedImage(face8, 1.0, [], [], [face8], [model_input])

    def finish_aligned(self, prepared: PreparedImage, restored: list[np.ndarray]) -> RestoreResult:
        """The restored crop blended with the input crop; it is the whole output."""
        face8 = prepared.crops[0]
        blended = blend_fidelity(restored[0], face8, self.fidelity_weight)
        return RestoreResult(blended, [], [face8], [blended])
