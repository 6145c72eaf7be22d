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

from gpen_cli.config import ConfigError, LandmarkSource, MaskKind, RestoreConfig
from gpen_cli.devices import pick_device, torch_turn
from gpen_cli.errors import GpenError
from gpen_cli.stages.align import Alignment, align_face, warp_crop
from gpen_cli.stages.blend import blend_fidelity
from gpen_cli.stages.clahe import apply_clahe
from gpen_cli.stages.detect import Detector, FanLandmarks
from gpen_cli.stages.faces import Face
from gpen_cli.stages.forward import GpenForward
from gpen_cli.stages.load import to_uint8
from gpen_cli.stages.mask import Masker, RectMasker
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


def load_generator(config: RestoreConfig, device: Any) -> nn.Module:
    """The GPEN generator the configuration names, loaded in the formulation it will run
    in (the fast kernels unless `exact`), so the forward stage needs no second copy."""
    from gpen_cli.weights import load_model

    return load_model(
        config.model, "gpen", config.weights_dir, device=device, fast=not config.exact
    )


def load_upscaler(config: RestoreConfig, device: Any) -> Upscaler | None:
    """The background upsampler for `upscale` 2 or 4 (None at 1), `config.upsampler`."""
    from gpen_cli.weights import load_model

    name = config.upsampler
    if name is None:
        return None
    if name == "lanczos":
        return Upscaler(None, config.upscale, device=device)
    try:
        network = load_model(name, "upsampler", config.weights_dir)
    except ValueError as exc:
        raise GpenError(str(exc)) from None
    return Upscaler(
        network, config.upscale, device=device, half=config.half, tile=config.tile, name=name
    )


def load_detector(config: RestoreConfig, device: Any) -> Detector:
    """The configured detector, its builder called as `DetectorBuilder` says."""
    from gpen_cli.weights import load_model

    return load_model(
        config.detector.value,
        "detector",
        config.weights_dir,
        device=str(device),
        score_threshold=config.score_threshold,
        min_face_size=config.min_face_size,
        drop_nested=config.drop_nested,
    )


def networks(config: RestoreConfig) -> dict[str, str]:
    """The registry name or file of every network `config` runs, by kind: decided here once,
    for the loaders below and for `fetch_weights`."""
    named = {"gpen": config.model, "detector": config.detector.value}
    if config.mask is MaskKind.PARSING:
        named["parsing"] = "parsenet"
    if config.landmarks is not LandmarkSource.DETECTOR:
        named["landmarks"] = "fan-2d"
    if config.upsampler not in (None, "lanczos"):
        named["upsampler"] = config.upsampler
    return named


def load_masker(config: RestoreConfig, device: Any) -> Masker:
    """The official parsing mask (ParseNet), or the official feathered square."""
    from gpen_cli.weights import load_model

    name = networks(config).get("parsing")
    if name is None:
        return RectMasker()
    return load_model(
        name, "parsing", config.weights_dir, device=device, half=config.half, exact=config.exact
    )


def load_refiner(config: RestoreConfig, device: Any) -> FanLandmarks | None:
    """face-alignment's 68-point model for `landmarks=fan`; None keeps the detector's."""
    from gpen_cli.weights import load_model

    name = networks(config).get("landmarks")
    if name is None:
        return None
    return load_model(name, "landmarks", config.weights_dir, device=str(device))


def fetch_weights(config: RestoreConfig) -> None:
    """Download every weight file `config` names that is absent, and check the generator's
    tensors (a GPEN layout, finite values), building no model and using no device.

    What a driver that runs no model (`--engine ray`) checks before the job: a missing or
    broken file stops it there in one line, downloaded once rather than by every actor, and
    a head node without the workers' GPU can still start it.
    """
    from gpen_cli.weights import check_gpen_structure, ensure_weight, get_spec

    named = networks(config)
    model = named.pop("gpen")
    for kind, name in named.items():
        if not Path(name).is_file():
            ensure_weight(get_spec(name, kind).name, config.weights_dir)
    if Path(model).is_file():
        generator, spec = Path(model), None
    else:
        spec = get_spec(model, "gpen")
        generator = ensure_weight(spec.name, config.weights_dir)
    problem = check_gpen_structure(generator, spec)
    if problem:
        raise GpenError(f"--model {generator}: {problem}")


def torch_device(config: RestoreConfig) -> Any:
    """The torch device `config.device` names; ConfigError when it is not usable here."""
    try:
        return pick_device(config.device)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError("device", str(exc).strip().splitlines()[0]) from None


def check_photo(image: Any) -> None:
    """ValueError saying what is wrong unless `image` is an H×W×3 uint8/uint16 array; None is
    what `cv2.imread` returns for a file it cannot read, so that is said first."""
    if image is None:
        raise ValueError("image is None (cv2.imread returns None for a missing or unreadable file)")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a NumPy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"image must be H×W×3 BGR uint8 or uint16, got shape {image.shape} {image.dtype}"
        )


def center_face(faces: list[Face], width: int, height: int) -> list[Face]:
    """The face whose box centre is nearest the image centre."""
    if not faces:
        return faces
    centre = np.array([width / 2, height / 2])
    distances = [np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre) for face in faces]
    return [faces[int(np.argmin(distances))]]


class FaceRestorer:
    """Restore every face of a BGR photo with GPEN, as the official pipeline does.

    Built from a `RestoreConfig` (`config=`), changed by keyword settings of the same names
    (`FaceRestorer(mask="rect")`); every value is checked before anything loads. `model`
    and `detector` may also be objects, for tests and embedding: any module mapping
    N×3×S×S RGB in [-1, 1] to the same (S from `model.size` or `size=`), and any object
    with `detect(image_bgr) -> list[Face]`. `clock`, when given, is told how long each stage
    takes; `on_tile(done, total)` the upsampler's progress over its tiles.
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        detector: str | Detector | None = None,
        *,
        config: RestoreConfig | None = None,
        size: int | None = None,
        clock: StageClock | NoClock | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        **settings: Any,
    ):
        for name, value in (("model", model), ("detector", detector)):
            if isinstance(value, str | Path):
                settings[name] = str(value)
        self.config = config = (config or RestoreConfig()).but(**settings)
        device = torch_device(config)
        module = model if isinstance(model, nn.Module) else load_generator(config, device)
        self.generator = GpenForward(
            module,
            size=size,
            device=device,
            batch_size=config.batch_size,
            half=config.half,
            compile_model=config.compile_model,
            exact=config.exact,
            source=type(model).__name__ if isinstance(model, nn.Module) else config.model,
        )
        self.size = self.generator.size
        self.batch_size = self.generator.batch_size
        self._torch_turn = torch_turn(device)
        self.clock = clock or NoClock()
        self.upscaler = load_upscaler(config, device)
        self.on_tile = on_tile
        self._warned_large_faces = False
        self.detector: Detector | None = None
        self.refiner: FanLandmarks | None = None
        self.masker: Masker | None = None
        if not config.aligned:
            given = detector is not None and not isinstance(detector, str)
            self.detector = detector if given else load_detector(config, device)
            self.refiner = load_refiner(config, device)
            self.masker = load_masker(config, device)

    @property
    def aligned(self) -> bool:
        return self.config.aligned

    # ------------------------------------------------------------------ one photo, three steps

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """Detect, align and crop the faces of a BGR uint8/uint16 photo."""
        check_photo(image)
        if self.aligned:
            return self._prepare_aligned(image)
        working, scale, canvas = image, 1.0, None
        if self.config.short_edge:
            with self.clock.stage("resize"):
                working, scale = resize_short_edge(image, self.config.short_edge)
        if self.upscaler is not None:
            with self.clock.stage("upscale"), self._torch_turn:
                canvas = self.upscaler(image, self.on_tile)
            with self.clock.stage("resize"):  # bilinear, as the official use_sr path
                working = cv2.resize(image, canvas.shape[1::-1])
            scale = float(self.config.upscale)
        working8 = to_uint8(working)
        with self.clock.stage("detect"), self._torch_turn:
            faces = self.detector.detect(working8)
            if self.config.only_center_face:
                faces = center_face(faces, working8.shape[1], working8.shape[0])
            if self.refiner is not None and faces:
                faces = self.refiner.refine(working8, faces)
        if canvas is not None:
            self._warn_large_faces(faces)
        with self.clock.stage("align"):
            alignments = [align_face(face.landmarks, self.size) for face in faces]
            crops = [warp_crop(working8, alignment) for alignment in alignments]
            inputs = [apply_clahe(crop) for crop in crops] if self.config.clahe else crops
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
        model_input = apply_clahe(face8) if self.config.clahe else face8
        return PreparedImage(face8, 1.0, [], [], [face8], [model_input])

    def forward(self, crops: Sequence[np.ndarray]) -> list[RestoredFace]:
        """GPEN on the crops, in batches; then each restored face's paste mask."""
        with self.clock.stage("forward"), self._torch_turn:
            images = self.generator(crops)
        if self.masker is None:
            return [RestoredFace(image, None) for image in images]
        with self.clock.stage("mask"), self._torch_turn:
            masks = self.masker(images)
        return [RestoredFace(*pair) for pair in zip(images, masks, strict=True)]

    def finish(
        self,
        prepared: PreparedImage,
        restored: Sequence[RestoredFace],
        *,
        reuse_input: bool = False,
    ) -> RestoreResult:
        """Soften small faces, blend with the input crops, paste back through the masks.

        `reuse_input`: the caller is done with the input photo, so the faces are pasted into
        it rather than into a copy (a 108 MP photo spares 324 MB).
        """
        with self.clock.stage("paste"):
            if self.aligned:
                face = blend_fidelity(
                    restored[0].image, prepared.crops[0], self.config.fidelity_weight
                )
                if self.upscaler is not None:  # the official use_sr upscales the restored face
                    with self.clock.stage("upscale"), self._torch_turn:
                        face = self.upscaler(face, self.on_tile)
                return RestoreResult(face, [], list(prepared.crops), [face])
            return self._paste(prepared, restored, reuse_input)

    def _paste(
        self, prepared: PreparedImage, restored: Sequence[RestoredFace], reuse_input: bool
    ) -> RestoreResult:
        blended = [
            blend_fidelity(soften_small_face(out.image, face), crop, self.config.fidelity_weight)
            for out, face, crop in zip(restored, prepared.faces, prepared.crops, strict=True)
        ]
        target, to_target, record_scale = prepared.image, 1.0 / prepared.scale, prepared.scale
        if prepared.canvas is not None:
            target, to_target = prepared.canvas, 1.0
        if self.config.keep_resized and prepared.scale != 1.0:
            target, _ = resize_short_edge(prepared.image, self.config.short_edge)
            to_target, record_scale = 1.0, 1.0
        pastes = [
            Paste(face, alignment.inverse * to_target, out.mask)
            for face, alignment, out in zip(blended, prepared.alignments, restored, strict=True)
        ]
        in_place = reuse_input or target is not prepared.image  # else a fresh image
        image = paste_faces(target, pastes, in_place=in_place)
        records = [FaceRecord.from_face(face, record_scale) for face in prepared.faces]
        return RestoreResult(image, records, prepared.crops, blended)

    def restore(self, image: np.ndarray) -> RestoreResult:
        """Restore every face of a BGR photo (uint8 or uint16); the rest is left untouched.

        In aligned mode the photo is one aligned face crop and the result is its restoration.
        """
        prepared = self.prepare(image)
        return self.finish(prepared, self.forward(prepared.model_inputs))
