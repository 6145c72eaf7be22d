"""The pipeline's stage objects, each doing one job of the restoration, and what they share.

`FaceRestorer` runs three lists of them, built from the stage registry (`registry.py`; the
built-in entries, in pipeline order, are in `builtin.py`):

    prepare  one photo:        resize, upscale, detect, landmarks, smooth, align, choose, clahe
    forward  crops of photos:  forward (GPEN), mask (paste masks), score
    finish   one photo:        blend, paste (aligned mode: blend, upscale)

A photo stage reads and fills the photo's `PreparedImage`; a face stage maps a batch of crops
(from any number of photos, as the engines pack them) to restored faces; a finish stage puts
one photo's restored faces back (`FinishWork`). A stage that runs a network says so
(`uses_torch`), and the restorer then holds the device's turn around it
(`devices.torch_turn`). The restorer times each stage under its `name`, and `gpen bench`
tabulates the registry's names (`registry.stage_names`), so a registered stage is timed and
shown. No stage runs inside another's timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from gpen_cli.stages.align import Alignment, align_face, warp_crop
from gpen_cli.stages.blend import blend_fidelity
from gpen_cli.stages.clahe import apply_clahe
from gpen_cli.stages.faces import Face, FaceChoice, FaceScores
from gpen_cli.stages.load import to_uint8
from gpen_cli.stages.paste import Paste, paste_faces
from gpen_cli.stages.resize import resize_short_edge

if TYPE_CHECKING:
    from gpen_cli.stages.detect import Detector, FanLandmarks
    from gpen_cli.stages.forward import GpenForward
    from gpen_cli.stages.mask import Masker
    from gpen_cli.stages.upscale import Upscaler

logger = logging.getLogger(__name__)

# Faces whose detected box is narrower than this are softened after GPEN, as the official
# pipeline does (its 3x3 binomial kernel): GPEN's detail would alias when shrunk back.
SMALL_FACE_PX = 100
_SOFTEN_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16


@dataclass
class PreparedImage:
    """One photo's work as the prepare stages fill it: what the generator gets, and what
    the finish stages need to put the restored faces back."""

    image: np.ndarray  # the input, BGR uint8 or uint16, untouched
    scale: float = 1.0  # working resolution / input resolution (--short-edge, --upscale)
    faces: list[Face] = field(default_factory=list)  # in working coordinates
    alignments: list[Alignment] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)  # aligned input crops, uint8 BGR
    model_inputs: list[np.ndarray] = field(default_factory=list)  # CLAHE applied when asked
    canvas: np.ndarray | None = None  # what faces are pasted onto when not `image` (upscale)
    working: np.ndarray | None = None  # the image faces are found in; dropped once prepared
    source: str | None = None  # the photo's name, for messages that speak of it
    # Every face found, when some are not restored (`faces` then holds the chosen ones).
    choices: list[FaceChoice] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.working is None:
            self.working = self.image


@dataclass(frozen=True)
class FaceInput:
    """A crop on its way to the forward step with what scoring it needs: the input crop
    the restored face is blended with and compared to (not the CLAHE'd one GPEN gets), and
    the detected face (small ones are softened before the blend)."""

    pixels: np.ndarray  # what GPEN gets
    original: np.ndarray
    face: Face | None  # None in aligned mode: nothing is softened


@dataclass
class RestoredFace:
    """GPEN's output for one crop and, when faces are pasted back, its paste mask; with
    scoring, the input crop it came from and its scores."""

    image: np.ndarray  # uint8 BGR at the model's size, 8-bit as the official converts it
    mask: np.ndarray | None  # float32 in [0, 1] at the same size; None in aligned mode
    source: np.ndarray | None = None  # the aligned input crop
    face: Face | None = None
    scores: FaceScores | None = None

    @classmethod
    def of(cls, crop: np.ndarray | FaceInput) -> RestoredFace:
        """The forward step's record of one crop, before GPEN runs."""
        if isinstance(crop, FaceInput):
            return cls(crop.pixels, None, crop.original, crop.face)
        return cls(crop, None, crop)


@dataclass
class FinishWork:
    """One photo's restored faces on their way back into it."""

    photo: PreparedImage
    restored: Sequence[RestoredFace]
    reuse_input: bool  # the caller is done with the input: paste into it, not into a copy
    blended: list[np.ndarray] = field(default_factory=list)
    image: np.ndarray | None = None  # the result


class PhotoStage(Protocol):
    name: str
    uses_torch: bool

    def __call__(self, work: PreparedImage) -> None: ...


class FinishStage(Protocol):
    name: str
    uses_torch: bool

    def __call__(self, work: FinishWork) -> None: ...


class FaceStage(Protocol):
    name: str
    uses_torch: bool

    def __call__(self, faces: list[RestoredFace]) -> None: ...


# ------------------------------------------------------------------------------- prepare


@dataclass
class ShortEdgeResize:
    """Work at a given short-side length (Lanczos)."""

    short_edge: int
    name: str = "resize"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        work.working, work.scale = resize_short_edge(work.image, self.short_edge)


@dataclass
class UpscaleCanvas:
    """The whole photo upscaled (the official use_sr): the canvas faces are pasted onto."""

    upscaler: Upscaler
    on_tile: Callable[[int, int], None] | None
    name: str = "upscale"
    uses_torch: bool = True

    def __call__(self, work: PreparedImage) -> None:
        work.canvas = self.upscaler(work.image, self.on_tile)


@dataclass
class CanvasSizedWorking:
    """Faces are found at the canvas's size in a bilinear resize, as the official use_sr."""

    factor: int
    name: str = "resize"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        work.working = cv2.resize(work.image, work.canvas.shape[1::-1])
        work.scale = float(self.factor)


@dataclass
class Detect:
    """Face boxes and 5 landmarks in the 8-bit working image; optionally only the face
    nearest the centre."""

    detector: Detector
    only_center_face: bool = False
    name: str = "detect"
    uses_torch: bool = True

    def __call__(self, work: PreparedImage) -> None:
        work.working = to_uint8(work.working)
        faces = self.detector.detect(work.working)
        if self.only_center_face:
            faces = center_face(faces, work.working.shape[1], work.working.shape[0])
        work.faces = faces


def center_face(faces: list[Face], width: int, height: int) -> list[Face]:
    """The face whose box centre is nearest the image centre."""
    if not faces:
        return faces
    centre = np.array([width / 2, height / 2])
    distances = [np.linalg.norm((face.box[:2] + face.box[2:]) / 2 - centre) for face in faces]
    return [faces[int(np.argmin(distances))]]


@dataclass
class RefineLandmarks:
    """Another model's landmarks in place of the detector's (face-alignment's 68 points)."""

    refiner: FanLandmarks
    name: str = "landmarks"
    uses_torch: bool = True

    def __call__(self, work: PreparedImage) -> None:
        if work.faces:
            work.faces = self.refiner.refine(work.working, work.faces)


@dataclass
class WarnEnlargedFaces:
    """Say once, naming the first photo, when upscaled faces are larger than GPEN's output:
    they are pasted enlarged."""

    size: int
    model: str
    name: str = "align"  # a check on the faces about to be aligned
    uses_torch: bool = False
    warned: bool = False

    def __call__(self, work: PreparedImage) -> None:
        largest = max((max(face.width, face.height) for face in work.faces), default=0)
        if largest > self.size and not self.warned:
            self.warned = True
            logger.warning(
                "%sfaces up to %d px at the upscaled size are larger than %s's %d px output: "
                "they are enlarged when pasted, as the official pipeline does%s",
                f"{work.source}: " if work.source else "",
                largest,
                self.model,
                self.size,
                " (said for the first such photo only)" if work.source else "",
            )


@dataclass
class Align:
    """Each face's similarity transform to GPEN's template, and its aligned crop."""

    size: int
    name: str = "align"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        work.alignments = [align_face(face.landmarks, self.size) for face in work.faces]
        work.crops = [warp_crop(work.working, alignment) for alignment in work.alignments]
        work.model_inputs = work.crops


@dataclass
class AlignedInput:
    """An aligned face crop as input, resized bilinearly to the model's size as the
    official code does: nothing to detect, nothing to paste."""

    size: int
    name: str = "align"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        face = to_uint8(work.image)
        if face.shape[:2] != (self.size, self.size):
            face = cv2.resize(face, (self.size, self.size))
        work.image = work.working = face
        work.crops = work.model_inputs = [face]


@dataclass
class Clahe:
    """Contrast equalisation of each crop before GPEN (the crops kept for the blend are
    the originals)."""

    name: str = "clahe"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        work.model_inputs = [apply_clahe(crop) for crop in work.crops]


@dataclass
class ScoreInputs:
    """Each crop sent on with its input crop and face, for the score stage."""

    name: str = "align"
    uses_torch: bool = False

    def __call__(self, work: PreparedImage) -> None:
        faces = work.faces or [None] * len(work.crops)  # aligned mode: no detected face
        work.model_inputs = [
            FaceInput(pixels, crop, face)
            for pixels, crop, face in zip(work.model_inputs, work.crops, faces, strict=True)
        ]


# ------------------------------------------------------------------------------- forward


@dataclass
class Generate:
    """The GPEN generator over the crops, in fixed-size batches."""

    generator: GpenForward
    name: str = "forward"
    uses_torch: bool = True

    def __call__(self, faces: list[RestoredFace]) -> None:
        images = self.generator([face.image for face in faces])
        for face, image in zip(faces, images, strict=True):
            face.image = image


@dataclass
class PasteMasks:
    """Each restored face's paste mask (face parsing, or the feathered square)."""

    masker: Masker
    name: str = "mask"
    uses_torch: bool = True

    def __call__(self, faces: list[RestoredFace]) -> None:
        masks = self.masker([face.image for face in faces])
        for face, mask in zip(faces, masks, strict=True):
            face.mask = mask


# -------------------------------------------------------------------------------- finish


def soften_small_face(restored: np.ndarray, face: Face) -> np.ndarray:
    """The restored crop, filtered with the official 3x3 kernel when the face was small."""
    if min(face.width, face.height) < SMALL_FACE_PX:
        return cv2.filter2D(restored, -1, _SOFTEN_KERNEL)
    return restored


@dataclass
class Blend:
    """Small faces softened, then each restored crop blended with its input crop by the
    fidelity weight (aligned mode has no boxes, so nothing is softened)."""

    fidelity_weight: float
    name: str = "blend"
    uses_torch: bool = False

    def __call__(self, work: FinishWork) -> None:
        photo = work.photo
        images = [out.image for out in work.restored]
        if photo.faces:
            images = [
                soften_small_face(image, face)
                for image, face in zip(images, photo.faces, strict=True)
            ]
        work.blended = [
            blend_fidelity(image, crop, self.fidelity_weight)
            for image, crop in zip(images, photo.crops, strict=True)
        ]


@dataclass
class UpscaleFace:
    """Aligned mode with upscaling: the restored face upscaled, as the official use_sr."""

    upscaler: Upscaler
    on_tile: Callable[[int, int], None] | None
    name: str = "upscale"
    uses_torch: bool = True

    def __call__(self, work: FinishWork) -> None:
        work.blended[0] = self.upscaler(work.blended[0], self.on_tile)


@dataclass
class PasteBack:
    """Each blended face warped back through its paste mask, onto the photo (or onto the
    upscaled canvas, or at the working size with `keep_resized`)."""

    keep_resized_edge: int | None  # the short edge to save at, when kept resized
    name: str = "paste"
    uses_torch: bool = False

    def __call__(self, work: FinishWork) -> None:
        photo = work.photo
        target, to_target = photo.image, 1.0 / photo.scale
        if photo.canvas is not None:
            target, to_target = photo.canvas, 1.0
        if self.keep_resized_edge and photo.scale != 1.0:
            target, _ = resize_short_edge(photo.image, self.keep_resized_edge)
            to_target = 1.0
        pastes = [
            Paste(face, alignment.inverse * to_target, out.mask)
            for face, alignment, out in zip(
                work.blended, photo.alignments, work.restored, strict=True
            )
        ]
        in_place = work.reuse_input or target is not photo.image  # else a fresh image
        work.image = paste_faces(target, pastes, in_place=in_place)
