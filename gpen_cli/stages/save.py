"""Decide where a restored image goes and write it atomically, never over an input.

Bit depth: PNG and TIFF keep 16-bit samples; JPEG, WebP and BMP are 8-bit formats, so
uint16 is converted to uint8 by x/257 rounded to nearest (65535 → 255) rather than left to
OpenCV, which would saturate instead of scaling.
Alpha: PNG, TIFF and WebP keep it; JPEG and BMP have no usable alpha, so it is dropped.

The bytes are encoded in memory, then written by `gpen_cli.io.atomic.write_atomically`: a
crash or a failed encode never leaves a half-written image under the final name, leftovers
are recognisable (`is_partial_file`), and without --overwrite an image that appears
meanwhile is never replaced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from gpen_cli.core.confine import check_inside
from gpen_cli.core.errors import OutputError, Phrase
from gpen_cli.io.atomic import write_atomically
from gpen_cli.stages.load import to_uint8
from gpen_cli.stages.metadata import Metadata, embed

logger = logging.getLogger(__name__)

WRITABLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
_EIGHT_BIT_EXTENSIONS = (".jpg", ".jpeg", ".webp", ".bmp")
_NO_ALPHA_EXTENSIONS = (".jpg", ".jpeg", ".bmp")
_EXT_CHOICES = {"png": ".png", "jpg": ".jpg"}


def output_path_for(
    input_path: Path,
    output: Path | str | None,
    ext: str = "same",
    suffix: str = "_gpen",
    is_dir_output: bool | None = None,
) -> Path:
    """Where the restored `input_path` is written.

    No `output`: beside the input, named `<stem><suffix><ext>`. An output folder (an existing
    directory, a str ending with a separator, or `is_dir_output=True`): `<folder>/<stem><ext>`.
    Otherwise `output` is the file path itself. `ext` is "same" (the input's extension when
    OpenCV can write it, else .png), "png" or "jpg".
    """
    input_path = Path(input_path)
    if ext == "same":
        same = input_path.suffix
        extension = same if same.lower() in WRITABLE_EXTENSIONS else ".png"
    elif ext in _EXT_CHOICES:
        extension = _EXT_CHOICES[ext]
    else:
        raise ValueError(f"ext must be 'same', 'png' or 'jpg', got {ext!r}")

    if output is None:
        return input_path.with_name(f"{input_path.stem}{suffix}{extension}")
    if is_dir_output is None:
        is_dir_output = str(output).endswith(("/", os.sep)) or Path(output).is_dir()
    if is_dir_output:
        return Path(output) / f"{input_path.stem}{extension}"
    return Path(output)


def save_image(
    path: Path,
    image: np.ndarray,
    *,
    overwrite: bool = False,
    protected: Iterable[Path] = (),
    root: Path | None = None,
    jpeg_quality: int = 95,
    metadata: Metadata | None = None,
) -> Path:
    """Write `image` (uint8/uint16, grey, BGR or BGRA) to `path` atomically and return `path`.

    `jpeg_quality` also sets WebP quality. `metadata` (the input's ICC profile and EXIF) is
    inserted beside the encoded pixels where the format carries it. Raises OutputError when
    `path` is one of the `protected` inputs, exists without `overwrite`, reaches through a
    symbolic link below the output folder `root`, or cannot be encoded or written.
    """
    path = Path(path)
    _refuse_unsafe_target(path, overwrite, protected, root)
    extension = path.suffix.lower()
    if extension not in WRITABLE_EXTENSIONS:
        raise OutputError(
            f"cannot write {path}: unsupported extension {path.suffix or '(none)'} "
            f"(use one of {', '.join(WRITABLE_EXTENSIONS)})"
        )
    encoded = _encode(path, _for_format(image, extension), extension, jpeg_quality)
    if metadata:
        encoded = embed(encoded, extension, metadata, image.shape[1], image.shape[0])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent}: {exc.strerror or exc}") from None
    write_atomically(path, encoded, overwrite=overwrite)
    logger.debug("wrote %s (%d bytes)", path, len(encoded))
    return path


def copy_file(
    source: Path,
    path: Path,
    *,
    overwrite: bool = False,
    protected: Iterable[Path] = (),
    root: Path | None = None,
) -> Path:
    """Copy `source` to `path` byte for byte, atomically and under the same refusals."""
    path = Path(path)
    _refuse_unsafe_target(path, overwrite, protected, root)
    try:
        data = Path(source).read_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot copy {source} to {path}: {exc.strerror or exc}") from None
    write_atomically(path, data, overwrite=overwrite)
    return path


def _refuse_unsafe_target(
    path: Path, overwrite: bool, protected: Iterable[Path], root: Path | None
) -> None:
    if root is not None:
        check_inside(path, root)
    target = path.resolve()
    for source in protected:
        source = Path(source)
        same = source.resolve() == target
        if not same and path.exists() and source.exists():
            same = os.path.samefile(source, path)  # hard links, case-insensitive filesystems
        if same:
            raise OutputError(f"refusing to write over input file {source}")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if path.exists() and not overwrite:
        raise OutputError(Phrase(f"{path} exists; pass `overwrite` to replace it", "overwrite"))


def _for_format(image: np.ndarray, extension: str) -> np.ndarray:
    """Apply the bit-depth and alpha policy of the module docstring."""
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}")
    if extension in _NO_ALPHA_EXTENSIONS and image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if extension in _EIGHT_BIT_EXTENSIONS:
        image = to_uint8(image)
    return np.ascontiguousarray(image)


def _encode(path: Path, image: np.ndarray, extension: str, jpeg_quality: int) -> memoryview:
    params: list[int] = []
    if extension in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif extension == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
    try:
        ok, buffer = cv2.imencode(extension, image, params)
    except cv2.error as exc:
        raise OutputError(f"cannot encode {path}: {str(exc).strip().splitlines()[-1]}") from None
    if not ok:
        raise OutputError(f"cannot encode {path} as {extension}")
    return memoryview(buffer)  # no copy: a large PNG is hundreds of MB
