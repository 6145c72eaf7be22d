"""Stage: face boxes and 5 landmarks, found once per image at a bounded resolution.

Detectors return `Face` records in the coordinates of the image they were given, best score
first, with landmarks ordered left eye, right eye, nose tip, left mouth corner, right mouth
corner, left/right as seen in the picture (the order the alignment template uses).
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from gpen_cli.core.errors import CheckpointError, GpenError, WeightsMissingError
from gpen_cli.stages.faces import Face
from gpen_cli.stages.float_resize import output_rows, resize_as_float32
from gpen_cli.weights.checkpoints import load_strict, read_state_dict, seeded

logger = logging.getLogger(__name__)

RETINAFACE_NETWORKS = ("mobile0.25", "resnet50")

# iBUG 68-point indices; "left" is the picture's left (the subject's right).
_LEFT_EYE_68 = slice(36, 42)
_RIGHT_EYE_68 = slice(42, 48)
_NOSE_TIP_68 = 30
_LEFT_MOUTH_68 = 48
_RIGHT_MOUTH_68 = 54

# face-alignment sizes its 256 px FAN crop from the box: scale = (w + h) / this, for boxes
# from RetinaFace-like detectors (its own RetinaFace and YuNet wrappers use the same value).
_FAN_BOX_REFERENCE = 165.0


# The official detector works at the photo's size up to this long side, else at 1000 px.
_OFFICIAL_DETECT_LIMIT = 1500
_OFFICIAL_DETECT_SIDE = 1000.0

# A detection sharing more than this fraction of the smaller box with a better one is dropped.
_MAX_NESTED_FRACTION = 0.5


class Detector(Protocol):
    """Anything that finds faces in a uint8 BGR H×W×3 image."""

    def detect(self, image_bgr: np.ndarray) -> list[Face]: ...


class DetectorBuilder(Protocol):
    """What a registered detector's `builder` is called with (after its entry's
    `build_options`): the device as text ("cpu", "cuda:0"), the confidence to keep a face
    (None: the detector's own default), the smallest box side in pixels to keep, and whether
    to drop boxes lying mostly inside a better one (`drop_nested` below)."""

    def __call__(
        self,
        weights_path: Path,
        *,
        device: str,
        score_threshold: float | None,
        min_face_size: float,
        drop_nested: bool,
    ) -> Detector: ...


def _read_weights(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise WeightsMissingError(f"{path}: {what} weights file not found")
    return read_state_dict(Path(path), f"{what} state dict")


def _check_image(image_bgr: np.ndarray) -> None:
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(
            f"detectors take uint8 H×W×3 BGR images, got {image_bgr.dtype} {image_bgr.shape}"
        )


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image with its long side at most `max_side` (area averaging), and the (x, y)
    factors back to it."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, np.ones(2)
    ratio = max_side / max(height, width)
    new_width, new_height = max(1, round(width * ratio)), max(1, round(height * ratio))
    small = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
    return small, np.array([width / new_width, height / new_height])


def drop_nested(boxes: np.ndarray, order: np.ndarray) -> list[int]:
    """`order` (best first) without boxes that lie mostly inside, or mostly cover, a better one.

    Not part of the official pipeline, so off by default (`drop_nested=True` turns it on).
    IoU-based NMS keeps these: on close-up portraits RetinaFace also reports a shifted second
    box over the same face at scores up to 0.97 (3 of the 6 FFHQ images in shared/), which
    the official code restores and pastes over the first; distinct faces, even in a crowded
    group photo, overlap far less than half.
    """
    areas = np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0), axis=1)
    kept: list[int] = []
    for i in order:
        if kept:
            top_left = np.maximum(boxes[kept, :2], boxes[i, :2])
            bottom_right = np.minimum(boxes[kept, 2:], boxes[i, 2:])
            shared = np.prod(np.maximum(bottom_right - top_left, 0.0), axis=1)
            smaller = np.maximum(np.minimum(areas[kept], areas[i]), 1e-9)
            if np.any(shared / smaller > _MAX_NESTED_FRACTION):
                continue
        kept.append(int(i))
    return kept


class _FilteredDetector:
    """Shared frame of the detectors: filter by size, sort best first, optionally un-nest.

    The underlying models keep per-call state (facexlib's RetinaFace stores the input's
    size on itself, OpenCV's YuNet its input size), so one lock serialises their calls:
    batch workers may share a detector safely.
    """

    def __init__(self, min_face_size: float, drop_nested: bool) -> None:
        self.min_face_size = min_face_size
        self.drop_nested = drop_nested
        self._lock = threading.Lock()

    def _detect_raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) x1 y1 x2 y2, scores (N,), landmarks (N, 5, 2) in `image_bgr` pixels."""
        raise NotImplementedError

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        _check_image(image_bgr)
        with self._lock:
            boxes, scores, landmarks = self._detect_raw(image_bgr)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        short_sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = np.flatnonzero(short_sides >= self.min_face_size)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        if self.drop_nested:
            keep = drop_nested(boxes, keep)
        return [Face(boxes[i], float(scores[i]), landmarks[i]) for i in keep]


def _official_detector_input(image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """The float32 image the official detector runs on, and its scale to `image_bgr`.

    Bit for bit `cv2.resize(np.float32(image), (0, 0), fx=factor, fy=factor)` above 1500 px,
    without the float32 copy of the whole photo (1.3 GB at 108 MP): see float_resize.
    """
    if max(image_bgr.shape[:2]) <= _OFFICIAL_DETECT_LIMIT:
        return np.float32(image_bgr), 1.0
    factor = _OFFICIAL_DETECT_SIDE / max(image_bgr.shape[:2])
    return resize_as_float32(image_bgr, factor), factor


def _too_thin_to_detect(shape: tuple[int, int]) -> bool:
    """Whether the official detector input of an image this size would have no row or no
    column (a strip of 8×20000 px at a 1000 px long side): it holds no face then."""
    if max(shape) <= _OFFICIAL_DETECT_LIMIT:
        return False
    factor = _OFFICIAL_DETECT_SIDE / max(shape)
    return min(output_rows(side, factor) for side in shape) < 1


class RetinaFaceDetector(_FilteredDetector):
    """facexlib's RetinaFace (MobileNet-0.25 or ResNet-50), weights loaded as plain tensors.

    Run as the official GPEN code runs it: at the photo's own size, except that a photo whose
    long side exceeds 1500 px is detected at a 1000 px long side (bilinear, on the float
    image) and the boxes and landmarks divided back in float32.
    """

    DEFAULT_SCORE = 0.9  # the official threshold

    def __init__(
        self,
        weights_path: Path,
        network: str = "mobile0.25",
        device: str = "cpu",
        score_threshold: float | None = None,
        nms_threshold: float = 0.4,
        min_face_size: float = 0,
        drop_nested: bool = False,
    ) -> None:
        super().__init__(min_face_size, drop_nested)
        if network not in RETINAFACE_NETWORKS:
            raise GpenError(
                f"unknown RetinaFace network {network!r}; choose {' or '.join(RETINAFACE_NETWORKS)}"
            )
        from facexlib.detection.retinaface import RetinaFace

        what = f"RetinaFace {network}"
        state = _read_weights(weights_path, what)
        with warnings.catch_warnings():  # torchvision's notice about resnet50(pretrained=False)
            warnings.simplefilter("ignore", UserWarning)
            model = RetinaFace(network_name=network, half=False, device=device)
        load_strict(model, state, str(weights_path), f"{what} state dict")
        self._model = model.eval()
        self.score_threshold = self.DEFAULT_SCORE if score_threshold is None else score_threshold
        self.nms_threshold = nms_threshold

    def _detect_raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # detect_faces takes BGR (it subtracts the BGR means 104, 117, 123) and returns N×15
        # float32 rows: box x1 y1 x2 y2, score, then 5 (x, y) points in picture-left-first
        # order, best score first.
        if _too_thin_to_detect(image_bgr.shape[:2]):
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        image, factor = _official_detector_input(image_bgr)
        with torch.inference_mode():
            rows = self._model.detect_faces(
                image,
                conf_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
                use_origin_size=True,
            )
        rows = rows.astype(np.float32) / factor  # float32 division, as the official's
        return rows[:, :4], rows[:, 4] * factor, rows[:, 5:15]


def random_retinaface(seed: int, network: str) -> torch.nn.Module:
    """facexlib's RetinaFace with seeded random weights (a registry random_init)."""
    from facexlib.detection.retinaface import RetinaFace

    with seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's pretrained=False notice
        return RetinaFace(network_name=network, half=False, device="cpu")


def is_retinaface(path: Path, network: str) -> bool:
    """Whether `path` holds RetinaFace weights of backbone `network`, by their key names."""
    prefix = {"resnet50": "body.layer1.", "mobile0.25": "body.stage1."}[network]
    state = _read_weights(path, "RetinaFace")
    return "ClassHead.0.conv1x1.weight" in state and any(key.startswith(prefix) for key in state)


class YuNetDetector(_FilteredDetector):
    """OpenCV's YuNet: small and fast, needs nothing beyond OpenCV.

    Its defaults differ from RetinaFace's on measurement: YuNet scores real faces lower
    (0.89-0.94 on the Solvay photo, so 0.9 lost 4 of 29) and misses faces larger than about
    400 px (none of the 1024 px FFHQ portraits at full size), while at a 640 px long side and
    0.7 it finds all 29 Solvay faces and all 3 FFHQ ones.
    """

    DEFAULT_SCORE = 0.7

    def __init__(
        self,
        weights_path: Path,
        device: str = "cpu",
        score_threshold: float | None = None,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        min_face_size: float = 0,
        drop_nested: bool = False,
    ) -> None:
        super().__init__(min_face_size, drop_nested)
        if device != "cpu":
            logger.info("YuNet runs through OpenCV on the CPU; ignoring device %s", device)
        if score_threshold is None:
            score_threshold = self.DEFAULT_SCORE
        self.max_side = max_side
        path = Path(weights_path)
        if not path.is_file():
            raise WeightsMissingError(f"{path}: YuNet weights file not found")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold
            )
        except cv2.error:
            raise CheckpointError(f"{path}: OpenCV cannot read it as a YuNet ONNX model") from None

    def _detect_raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        small, factors = _downscale(image_bgr, self.max_side)
        height, width = small.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(small)
        if rows is None:
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        # Rows: x, y, w, h, then the subject's right eye, left eye, nose, right and left mouth
        # corners (the subject's right is the picture's left, so already our order), then score.
        boxes = rows[:, :4].astype(np.float64)
        boxes[:, 2:] += boxes[:, :2]
        landmarks = rows[:, 4:14].astype(np.float64).reshape(-1, 5, 2) * factors
        return boxes * np.tile(factors, 2), rows[:, 14], landmarks


def landmarks68_to_5(points68: np.ndarray) -> np.ndarray:
    """Reduce iBUG 68-point landmarks to our 5: eye centres, nose tip, mouth corners."""
    points = np.asarray(points68, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != 68 or points.shape[1] < 2:
        raise ValueError(f"expected 68 landmarks as a (68, 2) array, got shape {points.shape}")
    points = points[:, :2]
    return np.stack(
        [
            points[_LEFT_EYE_68].mean(axis=0),
            points[_RIGHT_EYE_68].mean(axis=0),
            points[_NOSE_TIP_68],
            points[_LEFT_MOUTH_68],
            points[_RIGHT_MOUTH_68],
        ]
    )


class FanLandmarks:
    """Re-estimates detected faces' 5 points from face-alignment's 68-point 2D-FAN.

    Builds face-alignment's own FAN module and loads the local state dict (the format its
    `2DFAN4-*.pth.tar` release uses) as plain tensors, so nothing is fetched from the network;
    the number of hourglass stacks is read from the checkpoint.
    """

    def __init__(self, weights_path: Path, device: str = "cpu", flip_input: bool = True) -> None:
        from face_alignment.models import FAN

        path = Path(weights_path)
        state = _read_weights(path, "2D-FAN")
        stacks = {int(m.group(1)) for key in state if (m := re.match(r"m(\d+)\.", key))}
        if not stacks:
            raise CheckpointError(f"{path}: not a 2D-FAN state dict (no hourglass 'm0.*' keys)")
        net = FAN(max(stacks) + 1)
        load_strict(net, state, str(path), "2D-FAN state dict")
        self._net = net.to(device).eval()
        self.device = device
        self.flip_input = flip_input

    def refine(self, image_bgr: np.ndarray, faces: list[Face]) -> list[Face]:
        """The same faces (boxes, scores) with landmarks from the 68-point model."""
        if not faces:
            return []
        from face_alignment.utils import CENTER_Y_OFFSET, crop, flip

        image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        centers, scales = [], []
        for face in faces:
            center = (face.box[:2] + face.box[2:]) / 2.0
            center[1] -= face.height * CENTER_Y_OFFSET
            centers.append(center)
            scales.append((face.width + face.height) / _FAN_BOX_REFERENCE)
        crops = np.stack([crop(image_rgb, c, s) for c, s in zip(centers, scales, strict=True)])
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        with torch.inference_mode():
            heatmaps = self._net(batch)[-1]
            if self.flip_input:
                heatmaps = heatmaps + flip(self._net(flip(batch))[-1], is_label=True)
        points = heatmaps_to_points(
            heatmaps.float().cpu().numpy(), np.array(centers), np.array(scales)
        )
        return [
            Face(face.box.copy(), face.score, landmarks68_to_5(face_points))
            for face, face_points in zip(faces, points, strict=True)
        ]


def random_fan(seed: int) -> torch.nn.Module:
    """face-alignment's 4-stack 2D-FAN with seeded random weights (a registry random_init)."""
    from face_alignment.models import FAN

    with seeded(seed):
        return FAN(4)


def heatmaps_to_points(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """FAN heatmaps (N, K, H, W) to (N, K, 2) image points, decoded as face-alignment does.

    Peak, then a quarter-pixel step towards the higher neighbour, then back through the crop
    (side 200 * scale around the centre). Written in NumPy because face-alignment's version is
    numba-compiled on first use (seconds per run) and rounds the result to whole pixels.
    """
    count, points_per_face, height, width = heatmaps.shape
    peaks = heatmaps.reshape(count, points_per_face, height * width).argmax(axis=-1)
    xs, ys = peaks % width, peaks // width
    points = np.stack([xs, ys], axis=-1).astype(np.float64) + 0.5
    face_i, point_i = np.nonzero((xs > 0) & (xs < width - 1) & (ys > 0) & (ys < height - 1))
    x, y = xs[face_i, point_i], ys[face_i, point_i]
    maps = heatmaps[face_i, point_i]
    rows = np.arange(len(face_i))
    points[face_i, point_i, 0] += 0.25 * np.sign(maps[rows, y, x + 1] - maps[rows, y, x - 1])
    points[face_i, point_i, 1] += 0.25 * np.sign(maps[rows, y + 1, x] - maps[rows, y - 1, x])
    crop_sides = 200.0 * np.asarray(scales, dtype=np.float64).reshape(count, 1, 1)
    return points / width * crop_sides - crop_sides / 2 + np.asarray(centers).reshape(count, 1, 2)
