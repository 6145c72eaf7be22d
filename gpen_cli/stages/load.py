"""Read one input image into the pipeline's working form, refusing anything unusable.

Decoding is OpenCV's, of the file already open (so unicode paths work). Pillow reads
the header first, without decoding pixels: the size (so a decompression bomb is refused before
it costs memory), whether the source is grey, and the EXIF orientation, which OpenCV's
IMREAD_UNCHANGED ignores (TIFF excepted: its decoders apply the tag themselves). Pillow also
decodes the formats OpenCV cannot (GIF, ICO, PSD...).

Sample formats: uint8 and uint16 are kept as they are. Floating-point images (32-bit TIFF,
float EXR) are taken as values in [0, 1], clipped and scaled to uint16 so the precision
survives; signed integer images are refused. Grey+alpha comes back out as BGRA, because
OpenCV's encoders have no two-channel form.

No file is decoded before its size is known and allowed: where Pillow cannot read a header
(an oversized ancillary PNG chunk stops it before IHDR's size is used), the PNG header is read
here, and OpenCV's own decoder limit is set to the same bound for every other format
(by `gpen_cli/__init__.py`, as OpenCV reads it once, when it is imported).

The input file is only ever opened for reading, once: what is checked is what is decoded.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError, features

from gpen_cli.core.defaults import DEFAULT_MAX_PIXELS
from gpen_cli.core.errors import InputError
from gpen_cli.stages.integrity import data_ends_early
from gpen_cli.stages.metadata import Metadata, read_metadata
from gpen_cli.stages.resize import resize_to

logger = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What `load_image` decodes, by extension: the one list `gpen batch` scans for, and the one
# `gpen restore` names when a file of another kind cannot be decoded. OpenCV's photo formats,
# and Pillow's for what OpenCV lacks here (GIF, TGA, AVIF), HEIC/HEIF where a Pillow plugin
# for them is installed and registered.
_ALWAYS_READABLE = (
    ".bmp",
    ".dib",
    ".gif",
    ".jfif",
    ".jp2",
    ".jpe",
    ".jpeg",
    ".jpg",
    ".pbm",
    ".pgm",
    ".png",
    ".pnm",
    ".ppm",
    ".tga",
    ".tif",
    ".tiff",
    ".webp",
)
_IF_PILLOW_READS = {".avif": "AVIF", ".avifs": "AVIF", ".heic": "HEIF", ".heif": "HEIF"}


def _readable_extensions() -> frozenset[str]:
    Image.init()
    registered = Image.registered_extensions()
    extra = {ext for ext, kind in _IF_PILLOW_READS.items() if registered.get(ext) == kind}
    if "AVIF" in registered.values() and not features.check("avif"):  # no libavif
        extra -= {".avif", ".avifs"}
    return frozenset(_ALWAYS_READABLE) | extra


READABLE_EXTENSIONS = _readable_extensions()

_GRAY_PIL_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_FORMAT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}


@dataclass
class LoadedImage:
    """An input picture, upright, as BGR plus what is needed to write it back in kind."""

    path: Path
    pixels: np.ndarray  # H×W×3 BGR, uint8 or uint16
    alpha: np.ndarray | None  # H×W, same dtype as pixels
    was_gray: bool
    source_format: str  # "jpg", "png", "tif", "webp"...
    frames: int = 1  # an animated GIF or multi-page TIFF has more; only the first is used
    metadata: Metadata = Metadata()  # ICC profile and upright EXIF, for the output

    @property
    def frames_note(self) -> str | None:
        """What the report says of the frames left out, None for a still picture."""
        if self.frames <= 1:
            return None
        kind = "multi-page TIFF" if self.source_format == "tif" else "animated image"
        return f"{self.path}: {kind} with {self.frames} frames; only the first was restored"

    @property
    def bgr8(self) -> np.ndarray:
        """The colour image as uint8, for detection and cropping."""
        return to_uint8(self.pixels)

    def to_output(self, pixels: np.ndarray) -> np.ndarray:
        """Give restored BGR `pixels` the input's dtype and channels (grey, alpha) back.

        `pixels` may have another size than the input (kept at --short-edge size): the alpha
        channel is then resized to match.
        """
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected H×W×3 BGR pixels, got shape {pixels.shape}")
        out = _to_dtype(pixels, self.pixels.dtype)
        if self.was_gray:
            gray = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
            if self.alpha is None:
                return gray
            out = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        if self.alpha is None:
            return out
        height, width = out.shape[:2]
        return np.dstack([out, resize_to(self.alpha, width, height)])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint16 → uint8 by x/257 rounded to nearest (65535 → 255); uint8 is returned as is."""
    if image.dtype == np.uint8:
        return image
    if image.dtype != np.uint16:
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}")
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if image.dtype == dtype:
        return image
    if dtype == np.uint8:
        return to_uint8(image)
    if dtype == np.uint16 and image.dtype == np.uint8:
        return image.astype(np.uint16) * 257
    raise ValueError(f"cannot convert {image.dtype} pixels to {dtype}")


def load_image(
    path: Path, min_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS, upscale: int = 1
) -> LoadedImage:
    """Decode `path` upright, or raise InputError naming the file and why it cannot be used.

    `upscale` is the factor the photo will be enlarged by: the enlarged size is held to
    `max_pixels` too, from the header, so a photo whose output would be too large costs
    neither the decoding nor the upscaling.
    """
    path = Path(path)
    with _open_for_reading(path) as stream:
        header = _read_header(stream, path)
        if header is not None:
            _check_size(path, *header.size, min_size, max_pixels)
            check_upscaled_size(path, *header.size, upscale, max_pixels)
            # Orientation is a baseline TIFF tag: OpenCV's and Pillow's TIFF decoders apply it.
            orientation = 1 if header.format == "TIFF" else _orientation(header)
            was_gray = header.mode in _GRAY_PIL_MODES
            detected_format = (header.format or "").lower()
            frames = _frame_count(header)
            metadata = read_metadata(header)
        else:
            frames, metadata = 1, Metadata()
            size = _png_size(stream)
            if size is not None:
                _check_size(path, *size, min_size, max_pixels)
                check_upscaled_size(path, *size, upscale, max_pixels)
            orientation, was_gray, detected_format = 1, False, ""
        missing = data_ends_early(stream)
        if missing is not None:
            raise InputError(f"{path}: {missing}; not restored")
        array = _decode_with_opencv(stream, path)
        if array is None and header is not None:
            stream.seek(0)
            array = _decode_with_pillow(stream.read(), path)
    if array is None:
        kind = path.suffix.lower()
        unknown = f" ({kind} is not a format gpen reads)" if kind not in READABLE_EXTENSIONS else ""
        raise InputError(f"cannot decode {path}: not an image or corrupt{unknown}")

    array = _to_working_dtype(array, path)
    array = _apply_orientation(array, orientation)
    height, width = array.shape[:2]
    _check_size(path, width, height, min_size, max_pixels)
    check_upscaled_size(path, width, height, upscale, max_pixels)
    pixels, alpha, gray_array = _split_channels(array, path)

    suffix = path.suffix.lower().lstrip(".") or detected_format
    return LoadedImage(
        path=path,
        pixels=pixels,
        alpha=alpha,
        was_gray=was_gray or gray_array,
        source_format=_FORMAT_ALIASES.get(suffix, suffix),
        frames=frames,
        metadata=metadata,
    )


def _open_for_reading(path: Path) -> BinaryIO:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file (use gpen batch for folders)")
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # opening a FIFO would wait for a writer
            raise InputError(f"{path}: {_kind_of(status.st_mode)}, not an image file")
        if status.st_size == 0:
            raise InputError(f"{path}: empty file (0 bytes)")
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _read_header(stream: BinaryIO, path: Path) -> Image.Image | None:
    """Pillow's lazy open: size, mode and metadata without decoding pixels. None if unknown."""
    try:
        with warnings.catch_warnings():
            # Large-but-allowed images: our own limit decides, without Pillow's warning on
            # stderr; damaged metadata is Pillow's warning too, and the decoding says enough.
            warnings.simplefilter("ignore")
            return Image.open(stream)
    except Image.DecompressionBombError:
        raise InputError(
            f"{path}: header claims more pixels than the decompression-bomb limit; "
            "refusing to decode"
        ) from None
    except UnidentifiedImageError:
        return None
    except Exception as exc:  # broken headers surface as many exception types
        logger.debug("Pillow cannot read the header of %s: %s", path, exc)
        return None


def _frame_count(header: Image.Image) -> int:
    """Frames or pages in the file (1 when unknown): counted from the headers, not decoded."""
    try:
        return max(1, int(getattr(header, "n_frames", 1)))
    except Exception as exc:  # a damaged later frame must not cost the user the first
        logger.debug("cannot count the frames of %s: %s", header.filename, exc)
        return 1


def _png_size(stream: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR, which the format puts first; None if not a PNG."""
    stream.seek(0)
    head = stream.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _check_size(path: Path, width: int, height: int, min_size: int, max_pixels: int) -> None:
    if width < min_size or height < min_size:
        raise InputError(
            f"{path}: {width}×{height} px is too small to hold a face "
            f"(need at least {min_size} px a side)"
        )
    if width * height > max_pixels:
        raise InputError(
            f"{path}: header claims {width}×{height} px ({width * height / 1e6:.0f} MP), "
            f"more than the {max_pixels / 1e6:.0f} MP limit; refusing to decode"
        )


def check_upscaled_size(
    path: Path | None, width: int, height: int, upscale: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> None:
    """Refuse a photo whose upscaled output would exceed `max_pixels`, as its input would."""
    out_w, out_h = width * upscale, height * upscale
    if upscale <= 1 or out_w * out_h <= max_pixels:
        return
    name = f"{path}: " if path is not None else ""
    raise InputError(
        f"{name}upscaling this {width}×{height} photo {upscale}× would make {out_w}×{out_h} px "
        f"({out_w * out_h / 1e6:.0f} MP), more than the {max_pixels / 1e6:.0f} MP limit on "
        "outputs; refusing before any work (upscale less, or shrink the photo first)"
    )


def _orientation(header: Image.Image) -> int:
    """The EXIF orientation (1-8), 1 when absent or unreadable."""
    try:
        # PngImageFile.getexif decodes the whole image when no eXIf chunk precedes the
        # pixels; the base method only reads the metadata already parsed.
        exif = Image.Image.getexif(header) if header.format == "PNG" else header.getexif()
        value = int(exif.get(ExifTags.Base.Orientation, 1))
    except Exception as exc:  # a damaged EXIF block must not cost the user the photo
        logger.debug("ignoring unreadable EXIF: %s", exc)
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the stored pixels upright, as a viewer honouring EXIF orientation shows them."""
    if orientation in (5, 6, 7, 8):
        array = np.swapaxes(array, 0, 1)  # transpose: orientation 5
        if orientation == 6:
            array = array[:, ::-1]
        elif orientation == 7:
            array = array[::-1, ::-1]
        elif orientation == 8:
            array = array[::-1]
    elif orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    return np.ascontiguousarray(array)


def _decode_with_opencv(stream: BinaryIO, path: Path) -> np.ndarray | None:
    """OpenCV's decoding of the open file, or None where OpenCV cannot decode it.

    Where the system names open files (/proc/self/fd on Linux), `cv2.imread` reads the file
    already open, given no destination: it then decodes straight into the array it returns,
    one photo's worth of memory. `cv2.imdecode` of the bytes (every other system) decodes
    into memory of its own and the binding copies that into NumPy's: twice the photo at
    the peak, 0.3 GB more for a 108 MP photo.
    """
    by_descriptor = Path(f"/proc/self/fd/{stream.fileno()}")
    try:
        if by_descriptor.exists():
            return cv2.imread(str(by_descriptor), None, cv2.IMREAD_UNCHANGED)
        stream.seek(0)
        return cv2.imdecode(np.frombuffer(stream.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):  # the decoder's bound, before it allocated
            raise InputError(
                f"{path}: header claims more than the "
                f"{int(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS']) / 1e6:.0f} MP limit; "
                "refusing to decode"
            ) from None
        logger.debug("OpenCV cannot decode %s: %s", path, exc)
        return None


def _decode_with_pillow(data: bytes, path: Path) -> np.ndarray | None:
    """Pixels in OpenCV's layout (grey, grey+alpha, BGR or BGRA), or None when corrupt."""
    try:
        with warnings.catch_warnings():
            # Pillow warns on stderr of damaged metadata; the error or the result says enough.
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            image.load()
        if image.mode == "1":
            image = image.convert("L")
        if image.mode in ("L", "I", "F") or image.mode.startswith("I;16"):
            gray = np.asarray(image)
            return gray.astype(gray.dtype.newbyteorder("="), copy=False)  # I;16B is big-endian
        if image.mode in ("LA", "La"):
            return np.asarray(image.convert("LA"))
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        rgb = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
        return cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if has_alpha else cv2.COLOR_RGB2BGR)
    except Exception as exc:  # corrupt data surfaces as many exception types
        logger.debug("Pillow cannot decode %s: %s", path, exc)
        return None


def _to_working_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.floating):
        clipped = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
        return np.round(clipped * 65535.0).astype(np.uint16)
    if array.dtype.kind in "iu" and array.size and array.min() >= 0 and array.max() <= 65535:
        return array.astype(np.uint16)  # e.g. Pillow's 32-bit "I" mode holding 16-bit data
    raise InputError(f"{path}: unsupported sample format {array.dtype} (use 8 or 16 bit)")


def _split_channels(array: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(BGR pixels, alpha or None, whether the array itself was grey)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), None, True
    channels = array.shape[2]
    if channels == 2:
        gray = np.ascontiguousarray(array[:, :, 0])
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), np.ascontiguousarray(array[:, :, 1]), True
    if channels == 3:
        return array, None, False
    if channels == 4:
        return np.ascontiguousarray(array[:, :, :3]), np.ascontiguousarray(array[:, :, 3]), False
    raise InputError(f"{path}: unsupported image with {channels} channels")
