"""Which weights files the tool uses, where they live, and how they are fetched and checked.

The registry is data: one `ModelSpec` per file. Downloads stream into a hidden temporary file
beside the target, hash while streaming, and only an intact file is renamed into place, so an
interrupted or corrupted transfer never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Literal

import platformdirs

from gpen_cli import __version__
from gpen_cli.errors import GpenError, WeightsMissingError

logger = logging.getLogger(__name__)

ModelKind = Literal["gpen", "detector", "parsing", "landmarks"]
VerifyStatus = Literal["ok", "mismatch", "unknown", "missing"]

WEIGHTS_DIR_ENV = "GPEN_WEIGHTS_DIR"
BASE_URL_ENV = "GPEN_WEIGHTS_BASE_URL"
CHECKSUM_SUFFIX = ".sha256"

_CHUNK_BYTES = 1 << 20
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable weights file. `config` holds the constructor arguments it needs."""

    name: str
    filename: str
    url: str
    kind: ModelKind
    description: str
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    size_bytes: int | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        # Specs are shared module-wide: a caller must not be able to edit one's config in place.
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


_GPEN_OSS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
# The GPEN README points to ModelScope for the 1024 and 2048 generators (news of 2023-02-15);
# there pytorch_model.pt is the 1024 model and pytorch_model-2048.pt the 2048 one.
_GPEN_MODELSCOPE = (
    "https://www.modelscope.cn/models/iic/cv_gpen_image-portrait-enhancement-hires/resolve/master"
)
_FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download"

_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="GPEN-BFR-256",
        filename="GPEN-BFR-256.pth",
        url=f"{_GPEN_OSS}/GPEN-BFR-256.pth",
        kind="gpen",
        config={"size": 256, "channel_multiplier": 1, "narrow": 0.5},
        description="GPEN face restoration, 256 px faces: the fastest generator.",
    ),
    ModelSpec(
        name="GPEN-BFR-512",
        filename="GPEN-BFR-512.pth",
        url=f"{_GPEN_OSS}/GPEN-BFR-512.pth",
        kind="gpen",
        config={"size": 512, "channel_multiplier": 2, "narrow": 1.0},
        description="GPEN face restoration, 512 px faces: the authors' reference model.",
    ),
    ModelSpec(
        name="GPEN-BFR-1024",
        filename="GPEN-BFR-1024.pth",
        url=f"{_GPEN_MODELSCOPE}/pytorch_model.pt",
        kind="gpen",
        config={"size": 1024, "channel_multiplier": 2, "narrow": 1.0},
        description="GPEN face restoration, 1024 px faces (published on ModelScope).",
    ),
    ModelSpec(
        name="GPEN-BFR-2048",
        filename="GPEN-BFR-2048.pth",
        url=f"{_GPEN_MODELSCOPE}/pytorch_model-2048.pt",
        kind="gpen",
        config={"size": 2048, "channel_multiplier": 2, "narrow": 1.0},
        description="GPEN face restoration, 2048 px faces for large selfies (ModelScope).",
    ),
    ModelSpec(
        name="retinaface-resnet50",
        filename="detection_Resnet50_Final.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.1.0/detection_Resnet50_Final.pth",
        kind="detector",
        config={"network_name": "resnet50"},
        description="RetinaFace with a ResNet-50 backbone (facexlib): accurate face detector.",
    ),
    ModelSpec(
        name="retinaface-mobile",
        filename="detection_mobilenet0.25_Final.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.1.0/detection_mobilenet0.25_Final.pth",
        kind="detector",
        config={"network_name": "mobile0.25"},
        size_bytes=1_789_735,
        sha256="38ec7bb3c9cbfe2f40edabc05fab970a6d648747cbc534092be85d5eb9b37ed0",
        description="RetinaFace with a MobileNet-0.25 backbone (facexlib): small, fast detector.",
    ),
    ModelSpec(
        name="yunet",
        filename="face_detection_yunet.onnx",
        url=(
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2026may.onnx"
        ),
        kind="detector",
        size_bytes=229_738,
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        description="OpenCV YuNet face detector (ONNX, runs through cv2.FaceDetectorYN).",
    ),
    ModelSpec(
        name="parsenet",
        filename="parsing_parsenet.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.2.2/parsing_parsenet.pth",
        kind="parsing",
        config={"in_size": 512, "out_size": 512, "parsing_ch": 19},
        description="ParseNet face parsing (facexlib): masks the face region when pasting back.",
    ),
    ModelSpec(
        name="bisenet",
        filename="parsing_bisenet.pth",
        url=f"{_FACEXLIB_RELEASES}/v0.2.0/parsing_bisenet.pth",
        kind="parsing",
        config={"num_class": 19},
        description="BiSeNet face parsing (facexlib), 19 classes.",
    ),
    ModelSpec(
        name="fan-2d",
        filename="2DFAN4-11f355bf06.pth.tar",
        url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
        kind="landmarks",
        config={"network_size": 4},
        description="FAN 2D landmarks (face-alignment): 68 points, refines the 5 used to align.",
    ),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found for one model: `status` is ok, mismatch, unknown or missing."""

    name: str
    path: Path
    present: bool
    size_bytes: int | None
    status: VerifyStatus
    expected_sha256: str | None
    actual_sha256: str | None
    checksum_source: Literal["registry", "recorded"] | None
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "mismatch"


class DownloadError(GpenError):
    """A download failed; `reason` is the short cause, the message names file and URL."""

    def __init__(self, filename: str, url: str, reason: str) -> None:
        super().__init__(f"download of {filename} from {url} failed: {reason}")
        self.filename = filename
        self.url = url
        self.reason = reason


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or an error listing every known name."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise GpenError(f"unknown model {name!r}; known models: {known}") from None


def resolve_weights_dir_and_source(explicit: Path | None = None) -> tuple[Path, str]:
    """The weights folder and what chose it (for `gpen weights list`)."""
    if explicit is not None:
        return explicit.expanduser().absolute(), "--weights-dir"
    from_env = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser().absolute(), f"${WEIGHTS_DIR_ENV}"
    local = Path.cwd() / "weights"
    if local.is_dir():
        return local, "./weights"
    return platformdirs.user_cache_path("gpen-cli") / "weights", "user cache"


def resolve_weights_dir(explicit: Path | None = None) -> Path:
    """--weights-dir, else $GPEN_WEIGHTS_DIR, else ./weights when it exists, else the user cache."""
    return resolve_weights_dir_and_source(explicit)[0]


def weight_path(name: str, weights_dir: Path | None = None) -> Path:
    """Where the file for `name` is (or would be once downloaded)."""
    return resolve_weights_dir(weights_dir) / get_spec(name).filename


def checksum_path(path: Path) -> Path:
    """The file beside `path` recording its sha256 when the registry has none."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def source_url(spec: ModelSpec) -> str:
    """The registry URL, or the file under $GPEN_WEIGHTS_BASE_URL when a mirror is set."""
    base = os.environ.get(BASE_URL_ENV, "").strip()
    if base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(spec.filename)}"
    return spec.url


def fetch_command(spec: ModelSpec, weights_dir: Path) -> str:
    """The command a user runs to fetch `spec` into `weights_dir`."""
    return f"gpen weights download {spec.name} --weights-dir {weights_dir}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_weight(
    name: str,
    weights_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The local path of `name`, downloading it first when absent.

    A present file is trusted without re-hashing (that is what `gpen weights verify` is for);
    only its size is compared when the registry knows it, which costs one stat.
    """
    spec = get_spec(name)
    folder = resolve_weights_dir(weights_dir)
    path = folder / spec.filename
    hint = fetch_command(spec, folder)
    if spec.kind == "gpen":
        hint += ", or pass --model PATH"
    if path.is_file():
        size = path.stat().st_size
        if spec.size_bytes is not None and size != spec.size_bytes:
            raise GpenError(
                f"{path} has {size} bytes, expected {spec.size_bytes}: it is incomplete or "
                f"another file. Fetch it again with: {hint} --force."
            )
        return path
    url = source_url(spec)
    if not download:
        raise WeightsMissingError(
            f"{spec.filename} not found in {folder} (downloads are off). Fetch it from {url} "
            f"with: {hint}."
        )
    try:
        return globals()["download"](spec, folder, progress=progress, url=url)
    except DownloadError as exc:
        raise WeightsMissingError(
            f"{spec.filename} not found in {folder} and the download from {url} failed "
            f"({exc.reason}). Fetch it with: {hint}."
        ) from None
