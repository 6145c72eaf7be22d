"""The review page's pictures: a thumbnail of each photo before and after, and of each face.

One photo at a time: its input is read, its thumbnails written, and it is let go before its
output is read, so memory stays that of one photo however long the report. Photos are read
as the pipeline reads them (upright, 8-bit), so the report's face boxes, given in the
input's pixels, fall on the faces; on the output they are scaled to its size.

Every file is a JPEG named after the photo's place in the report (never after the photo:
its name may be anything), written atomically into the page's own folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from gpen_cli.core.errors import GpenError, OutputError
from gpen_cli.io.atomic import write_atomically
from gpen_cli.review.read import Photo

PHOTO_SIDE = 960  # px, the longer side of a photo's thumbnail: sharp at the page's width
FACE_SIDE = 96  # px, the longer side of a face's thumbnail, shown at that size
FACE_MARGIN = 0.2  # of the box's size, added around a face so its outline shows
JPEG_QUALITY = 85
# The names this module gives files: only these are ever removed from the folder.
_OWN_NAME = re.compile(r"\d+-(before|after)(-face\d+)?\.jpg")


@dataclass
class Thumb:
    """A written thumbnail: its file name in the folder and its size in pixels."""

    name: str
    width: int
    height: int


@dataclass
class PhotoThumbs:
    """What was made for one photo; `problems` says what could not be read, for its card."""

    before: Thumb | None = None
    after: Thumb | None = None
    faces: dict[tuple[int, str], Thumb] = field(default_factory=dict)  # (index, side)
    problems: list[str] = field(default_factory=list)


def make_thumbs(photo: Photo, folder: Path, protected: set[Path]) -> PhotoThumbs:
    """Write the thumbnails of `photo` into `folder`, never onto a file of `protected`."""
    thumbs = PhotoThumbs()
    size = None
    if photo.input_path is not None:
        image = _read(photo.input_path, thumbs)
        if image is not None:
            thumbs.before = _photo_thumb(
                image, f"{photo.number}-before.jpg", None, folder, protected
            )
            size = image.shape[1], image.shape[0]
            _face_thumbs(photo, image, (1.0, 1.0), "before", folder, protected, thumbs)
        del image
    if photo.output_path is not None:
        image = _read(photo.output_path, thumbs)
        if image is not None:
            shape = (thumbs.before.width, thumbs.before.height) if thumbs.before else None
            thumbs.after = _photo_thumb(
                image, f"{photo.number}-after.jpg", shape, folder, protected
            )
            scale = (image.shape[1] / size[0], image.shape[0] / size[1]) if size else (1.0, 1.0)
            _face_thumbs(photo, image, scale, "after", folder, protected, thumbs)
    return thumbs


def _read(path: Path, thumbs: PhotoThumbs) -> np.ndarray | None:
    """The photo at `path` upright as 8-bit BGR, or None with the reason in `thumbs`."""
    from gpen_cli.stages.load import load_image

    try:
        return load_image(path).bgr8
    except GpenError as exc:
        thumbs.problems.append(str(exc))
    except (OSError, MemoryError, cv2.error) as exc:
        thumbs.problems.append(f"{path}: cannot be read ({exc})")
    return None


def _photo_thumb(
    image: np.ndarray,
    name: str,
    shape: tuple[int, int] | None,
    folder: Path,
    protected: set[Path],
) -> Thumb:
    """`image` at most PHOTO_SIDE px long (or at `shape`, the before's, so the two overlay)."""
    height, width = image.shape[:2]
    if shape is None:
        scale = min(1.0, PHOTO_SIDE / max(width, height))
        shape = max(1, round(width * scale)), max(1, round(height * scale))
    return _write(_resized(image, shape), folder / name, protected)


def _face_thumbs(
    photo: Photo,
    image: np.ndarray,
    scale: tuple[float, float],
    side: str,
    folder: Path,
    protected: set[Path],
    thumbs: PhotoThumbs,
) -> None:
    """A thumbnail of each face with a box, cut from `image` (boxes scaled by `scale`)."""
    height, width = image.shape[:2]
    for face in photo.faces:
        if face.box is None:
            continue
        x1, y1, x2, y2 = face.box
        margin_x, margin_y = (x2 - x1) * FACE_MARGIN, (y2 - y1) * FACE_MARGIN
        left = max(0, int((x1 - margin_x) * scale[0]))
        top = max(0, int((y1 - margin_y) * scale[1]))
        right = min(width, int(np.ceil((x2 + margin_x) * scale[0])))
        bottom = min(height, int(np.ceil((y2 + margin_y) * scale[1])))
        if right - left < 2 or bottom - top < 2:
            continue
        crop = image[top:bottom, left:right]
        ratio = FACE_SIDE / max(crop.shape[:2])
        shape = max(1, round(crop.shape[1] * ratio)), max(1, round(crop.shape[0] * ratio))
        name = f"{photo.number}-{side}-face{face.index}.jpg"
        thumbs.faces[(face.index, side)] = _write(_resized(crop, shape), folder / name, protected)


def _resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == shape:
        return image
    shrinking = shape[0] < image.shape[1]
    return cv2.resize(image, shape, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _write(image: np.ndarray, path: Path, protected: set[Path]) -> Thumb:
    if path.resolve() in protected:
        raise OutputError(f"{path}: is a photo of the report; it is never replaced")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode the thumbnail")
    write_atomically(path, data.tobytes(), overwrite=True)
    return Thumb(name=path.name, width=int(image.shape[1]), height=int(image.shape[0]))


def remove_stale(folder: Path, kept: set[str]) -> None:
    """Remove the thumbnails an earlier page left in `folder` that this one does not use
    (only files named as this module names them)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if _OWN_NAME.fullmatch(entry.name) and entry.name not in kept and entry.is_file():
            try:
                os.unlink(entry.path)
            except OSError:
                continue
