"""FaceRestorer: the stages of `gpen_cli.stages` chained into one call.

`restore(image)` runs everything for one photo. `prepare` (resize, detect, align, CLAHE),
`forward` (GPEN, then the parsing mask) and `finish` (soften, blend, paste) are the same work
in three steps, so an engine can send faces from several photos through the models together.
Aligned mode (the input is one aligned face crop) is a setting of the restorer: the same
three steps, with nothing to detect or paste.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from gpen_cli.config import DetectorName, LandmarkSource, MaskKind
from gpen_cli.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL, MAX_SHORT_EDGE
from gpen_cli.errors import GpenError
from gpen_cli.names import match_name, parse_choice
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
from gpen_cli.stages.upscale import Upscaler
from gpen_cli.timing import NoClock, StageClock

logger = logging.getLogger(__name__)

# Faces whose detected box is narrower than this are softened after GPEN, as the official
# pipeline does (its 3x3 binomial kernel): GPEN's detail would alias when shrunk back.
SMALL_FACE_PX = 100
_SOFTEN_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16


def soften_small_face(restored: np.ndarray, face: Face) -> np.ndarray:
    """The restored crop, filtered with the official 3x3 kernel when the face was small."""
    if min(face.width, face.height) < SMALL_FACE_PX:
        return cv2.filter2D(restored, -1, _SOFTEN_KERNEL)
    return restored


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
    canvas: np.ndarray | None = None  # what faces are pasted onto when not `image` (--upscale)


@dataclass
class RestoredFace:
    """GPEN's output for one crop and, when faces are pasted back, its paste mask."""

    image: np.ndarray  # uint8 BGR at the model's size, 8-bit as the official converts it
    mask: np.ndarray | None  # float32 in [0, 1] at the same size; None in aligned mode


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list[FaceRecord]
    input_crops: list[np.ndarray] = field(default_factory=list)
    restored_crops: list[np.ndarray] = field(default_factory=list)


def resolve_model(
    model: str | Path | nn.Module, weights_dir: Path | None, device: Any, *, fast: bool = False
) -> nn.Module:
    """A module as is, a checkpoint path, or a registry name (downloaded when absent).

    A checkpoint is loaded in the formulation it will run in (`fast`), so the forward stage
    has no second copy of the weights to make.
    """
    from gpen_cli.models import load_gpen
    from gpen_cli.weights import MODELS, ensure_weight

    if isinstance(model, nn.Module):
        return model
    name = {known.lower(): known for known in MODELS}.get(str(model).lower())
    if name is not None:
        if MODELS[name].kind != "gpen":
            raise GpenError(f"{name} is a {MODELS[name].kind} model, not a GPEN generator")
        return load_gpen(ensure_weight(name, weights_dir), device=device, fast=fast)
    path = Path(model)
    if not path.exists():
        gpen_names = [known for known, spec in MODELS.items() if spec.kind == "gpen"]
        try:
            match_name(str(model), gpen_names, "GPEN model")
        except GpenError as exc:
            raise GpenError(f"{model}: no such file, and {exc}") from None
    return load_gpen(path, device=device, fast=fast)


UPSCALES = (1, 2, 4)


def resolve_upscaler(
    scale: int,
    bg_upsampler: str | Path | None,
    weights_dir: Path | None,
    device: Any,
    *,
    half: bool,
    tile: int | None,
) -> Upscaler | None:
    """The background upsampler for `--upscale scale`; None at scale 1.

    `bg_upsampler` is a registry name, an SR checkpoint path, or "none" (Lanczos); by
    default GPEN's own RealESRNet of that scale, as the official `--use_sr`.
    """
    from gpen_cli.models.upsampler import load_sr_net
    from gpen_cli.weights import MODELS, ensure_weight

    if scale == 1:
        return None
    name = str(bg_upsampler) if bg_upsampler is not None else f"realesrnet_x{scale}"
    if name.lower() == "none":
        return Upscaler(None, scale, device=device)
    if name in MODELS:
        if MODELS[name].kind != "upsampler":
            raise GpenError(f"--bg-upsampler {name}: a {MODELS[name].kind} model, not an upsampler")
        path = ensure_weight(name, weights_dir)
    else:
        path = Path(name)
        if not path.exists():
            names = ", ".join(n for n, spec in MODELS.items() if spec.kind == "upsampler")
            raise GpenError(
                f"--bg-upsampler {name}: no such file, and not a known upsampler ({names}, none)"
            )
    try:
        return Upscaler(load_sr_net(path), scale, device=device, half=half, tile=tile, name=name)
    except ValueError as exc:
        raise GpenError(str(exc)) from None


def center_face(faces: list[Face], width: int, height: int) -> list[Face]:
    """The face whose box centre is nearest the image centre."""
    if not faces:
        return faces
    centre = np.array([width / 2, height / 2])
    distances = [np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre) for face in faces]
    return [faces[int(np.argmin(distances))]]


class FaceRestorer:
    """Restore every face of a BGR photo with GPEN, as the official pipeline does.

    `model` is a registry name (e.g. "GPEN-BFR-512"), a checkpoint path, or any module that
    maps N×3×S×S RGB in [-1, 1] to the same (S from `model.size` or `size=`). `detector` is a
    name such as "retinaface-mobile" (resolved through the weights folder) or an object with
    `detect(image_bgr) -> list[Face]`. `clock`, when given, is told how long each stage takes.
    `upscale` (2 or 4) upscales the whole photo with `bg_upsampler` (a registry name, an SR
    checkpoint path or "none" for Lanczos; GPEN's RealESRNet by default) and restores the
    faces at that size, as the official `use_sr`; `tile` forces its tile size and
    `on_tile(done, total)` is told its progress.
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
        drop_nested: bool = False,
        landmarks: LandmarkSource | str = LandmarkSource.DETECTOR,
        mask: MaskKind | str = MaskKind.PARSING,
        aligned: bool = False,
        half: bool = False,
        compile_model: bool = False,
        exact: bool = False,
        clock: StageClock | NoClock | None = None,
        upscale: int = 1,
        bg_upsampler: str | Path | None = None,
        tile: int | None = None,
        on_tile: Callable[[int, int], None] | None = None,
    ):
        # Every choice is checked before anything loads or downloads.
        mask = parse_choice(MaskKind, mask, "mask")
        landmarks = parse_choice(LandmarkSource, landmarks, "landmark source")
        if isinstance(detector, str) and not aligned:
            detector = parse_choice(DetectorName, detector, "detector").value
        if not 0.0 <= fidelity_weight <= 1.0:
            raise GpenError(f"--fidelity-weight must be between 0 and 1, got {fidelity_weight}")
        if short_edge is not None and not 16 <= short_edge <= MAX_SHORT_EDGE:
            raise GpenError(
                f"--short-edge must be between 16 and {MAX_SHORT_EDGE} px, got {short_edge}"
            )
        if upscale not in UPSCALES:  # before any model is loaded
            raise GpenError(
                f"--upscale must be one of {', '.join(map(str, UPSCALES))}, got {upscale}"
            )
        if upscale != 1 and short_edge is not None:
            raise GpenError("--upscale and --short-edge cannot be combined: pick one output size")
        weights_dir = Path(weights_dir) if weights_dir is not None else None
        try:
            torch_device = pick_device(device)
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0].removeprefix(f"--device {device}: ")
            raise GpenError(f"--device {device}: {reason}") from None
        self.generator = GpenForward(
            resolve_model(model, weights_dir, torch_device, fast=not exact),
            size=size,
            device=torch_device,
            batch_size=batch_size,
            half=half,
            compile_model=compile_model,
            exact=exact,
            source=str(model) if not isinstance(model, nn.Module) else type(model).__name__,
        )
        self.size = self.generator.size
        self.batch_size = self.generator.batch_size
        self.fidelity_weight = fidelity_weight
        self.clahe = clahe
        self.short_edge = short_edge
        self.keep_resized = keep_resized
        self.only_center_face = only_center_face
        self.aligned = aligned
        self.clock = clock or NoClock()
        self.upscale = upscale
        self.upscaler = resolve_upscaler(
            upscale, bg_upsampler, weights_dir, torch_device, half=half, tile=tile
        )
        self.on_tile = on_tile
        self.paste_in_place = False  # a caller done with the input photo spares its copy
        self._warned_large_faces = False
        self.detector: Detector | None = None
        self.refiner = None
        self.masker = None
        if not aligned:
            self.detector = (
                make_detector(
                    detector,
                    weights_dir,
                    device=str(torch_device),
                    score_threshold=score_threshold,
                    min_face_size=min_face_size,
                    drop_nested=drop_nested,
                )
                if isinstance(detector, str)
                else detector
            )
            self.refiner = _landmark_refiner(landmarks, weights_dir, torch_device)
            self.masker = make_masker(mask, weights_dir, torch_device, half)

    # ------------------------------------------------------------------ one photo, three steps

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """Detect, align and crop the faces of a BGR uint8/uint16 photo."""
        if self.aligned:
            return self._prepare_aligned(image)
        working, scale, canvas = image, 1.0, None
        if self.short_edge:
            with self.clock.stage("resize"):
                working, scale = resize_short_edge(image, self.short_edge)
        if self.upscaler is not None:
            with self.clock.stage("upscale"):
                canvas = self.upscaler(image, self.on_tile)
            with self.clock.stage("resize"):  # bilinear, as the official use_sr path
                working = cv2.resize(image, canvas.shape[1::-1])
            scale = float(self.upscale)
        working8 = to_uint8(working)
        with self.clock.stage("detect"):
            faces = self.detector.detect(working8)
            if self.only_center_face:
                faces = center_face(faces, working8.shape[1], working8.shape[0])
            if self.refiner is not None and faces:
                faces = self.refiner.refine(working8, faces)
        if canvas is not None:
            self._warn_large_faces(faces)
        with self.clock.stage("align"):
            alignments = [align_face(face.landmarks, self.size) for face in faces]
            crops = [warp_crop(working8, alignment) for alignment in alignments]
            inputs = [apply_clahe(crop) for crop in crops] if self.clahe else crops
        return PreparedImage(image, scale, faces, alignments, crops, inputs, canvas)

    def _warn_large_faces(self, faces: list[Face]) -> None:
        """Say once when upscaled faces are larger than GPEN's output: they are pasted enlarged."""
        largest = max((max(face.width, face.height) for face in faces), default=0)
        if largest > self.size and not self._warned_large_faces:
            self._warned_large_faces = True
            logger.warning(
                "faces up to %d px at the upscaled size are larger than %s's %d px output: "
                "they are enlarged when pasted, as the official pipeline does",
                largest,
                self.generator.source,
                self.size,
            )

    def _prepare_aligned(self, face: np.ndarray) -> PreparedImage:
        """An aligned face crop, resized bilinearly to the model's size as the official code."""
        face8 = to_uint8(face)
        if face8.shape[:2] != (self.size, self.size):
            face8 = cv2.resize(face8, (self.size, self.size))
        model_input = apply_clahe(face8) if self.clahe else face8
        return PreparedImage(face8, 1.0, [], [], [face8], [model_input])

    def forward(self, crops: Sequence[np.ndarray]) -> list[RestoredFace]:
        """GPEN on the crops, in batches; then each restored face's paste mask."""
        with self.clock.stage("forward"):
            images = self.generator(crops)
        if self.masker is None:
            return [RestoredFace(image, None) for image in images]
        with self.clock.stage("mask"):
            masks = self.masker(images)
        return [RestoredFace(*pair) for pair in zip(images, masks, strict=True)]

    def finish(self, prepared: PreparedImage, restored: Sequence[RestoredFace]) -> RestoreResult:
        """Soften small faces, blend with the input crops, paste back through the masks."""
        with self.clock.stage("paste"):
            if self.aligned:
                face = blend_fidelity(restored[0].image, prepared.crops[0], self.fidelity_weight)
                if self.upscaler is not None:  # the official use_sr upscales the restored face
                    with self.clock.stage("upscale"):
                        face = self.upscaler(face, self.on_tile)
                return RestoreResult(face, [], list(prepared.crops), [face])
            return self._paste(prepared, restored)

    def _paste(self, prepared: PreparedImage, restored: Sequence[RestoredFace]) -> RestoreResult:
        blended = [
            blend_fidelity(soften_small_face(out.image, face), crop, self.fidelity_weight)
            for out, face, crop in zip(restored, prepared.faces, prepared.crops, strict=True)
        ]
        target, to_target, record_scale = prepared.image, 1.0 / prepared.scale, prepared.scale
        if prepared.canvas is not None:
            target, to_target = prepared.canvas, 1.0
        if self.keep_resized and prepared.scale != 1.0:
            target, _ = resize_short_edge(prepared.image, self.short_edge)
            to_target, record_scale = 1.0, 1.0
        pastes = [
            Paste(face, alignment.inverse * to_target, out.mask)
            for face, alignment, out in zip(blended, prepared.alignments, restored, strict=True)
        ]
        in_place = self.paste_in_place or target is not prepared.image  # else a fresh image
        image = paste_faces(target, pastes, in_place=in_place)
        records = [FaceRecord.from_face(face, record_scale) for face in prepared.faces]
        return RestoreResult(image, records, prepared.crops, blended)

    def restore(self, image: np.ndarray) -> RestoreResult:
        """Restore every face of a BGR photo (uint8 or uint16); the rest is left untouched.

        In aligned mode the photo is one aligned face crop and the result is its restoration.
        """
        prepared = self.prepare(image)
        return self.finish(prepared, self.forward(prepared.model_inputs))


def _landmark_refiner(landmarks: LandmarkSource, weights_dir: Path | None, device: Any):
    """face-alignment's 68-point model for `--landmarks fan`; None keeps the detector's."""
    if landmarks is LandmarkSource.DETECTOR:
        return None
    from gpen_cli.stages.detect import FanLandmarks
    from gpen_cli.weights import ensure_weight

    return FanLandmarks(ensure_weight("fan-2d", weights_dir), device=str(device))
