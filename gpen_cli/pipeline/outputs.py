"""Everything `restore` and `batch` write for one input: the result, and on request the
face crops and a side-by-side comparison."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gpen_cli.io.atomic import is_partial_file, remove_partials_of
from gpen_cli.pipeline.restorer import RestoreResult
from gpen_cli.stages.load import LoadedImage, to_uint8
from gpen_cli.stages.save import copy_file, save_image

COMPARE_MAX_HEIGHT = 1600
COMPARE_LABELS = ("before", "after")


@dataclass(frozen=True)
class OutputOptions:
    """What is written for each photo, and how: one object, passed whole from the command
    that reads the options to the writer, so a new output option is one field here."""

    ext: str = "same"  # the output format: "same" as the input, or an extension
    overwrite: bool = False  # replace an output that exists (else the photo is skipped)
    save_faces: bool = False  # also each face's crop, as it went in and as it came out
    compare: bool = False  # also the photo before and after, side by side
    # Files never written besides each photo's own input: `gpen restore` protects every
    # input it was given, so no output can land on another one.
    protected: tuple[Path, ...] = ()


# Extras go to sub-folders of the output's folder, so a rerun over `*.jpg` never takes them
# for photos, and the results stay together. They are named after the output's whole file
# name, extension included: `p.jpg` and `p.png` in one folder get extras of their own.
COMPARE_FOLDER = "gpen-compare"
FACES_FOLDER = "gpen-faces"


def compare_path(output: Path) -> Path:
    return output.parent / COMPARE_FOLDER / f"{output.name}.jpg"


def faces_dir(output: Path) -> Path:
    return output.parent / FACES_FOLDER / output.name


def remove_stale_partials(output: Path) -> None:
    """Delete the temporary files a killed run left for `output` and its extras; a folder
    that is a symbolic link is not entered (it may lead into the inputs)."""
    remove_partials_of(output)
    if not os.path.islink(output.parent / COMPARE_FOLDER):
        remove_partials_of(compare_path(output))
    folder = faces_dir(output)
    if os.path.islink(folder.parent) or os.path.islink(folder) or not folder.is_dir():
        return
    for path in folder.iterdir():
        if is_partial_file(path):
            path.unlink(missing_ok=True)


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Input left, result right, labelled "before" and "after", 8-bit BGR, no taller than
    COMPARE_MAX_HEIGHT."""
    pair = [to_uint8(image[:, :, :3] if image.ndim == 3 else image) for image in (before, after)]
    pair = [cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image for image in pair]
    height = min(pair[0].shape[0], COMPARE_MAX_HEIGHT)
    resized = [
        cv2.resize(
            image,
            (round(image.shape[1] * height / image.shape[0]), height),
            interpolation=cv2.INTER_AREA,
        )
        if image.shape[0] != height
        else image
        for image in pair
    ]
    gap = np.full((height, 8, 3), 255, np.uint8)
    left, right = (
        labelled(image, text) for image, text in zip(resized, COMPARE_LABELS, strict=True)
    )
    return np.hstack([left, gap, right])


def labelled(picture: np.ndarray, text: str) -> np.ndarray:
    """A copy of `picture` (the caller's may be the result itself) with `text` in white on a
    black box in its top-left corner, sized to the picture: which side is which, said."""
    image = picture.copy()
    scale = max(0.4, image.shape[0] / 900)
    thickness = max(1, round(scale * 1.5))
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, round(height / 3))
    right, bottom = min(image.shape[1], width + 2 * pad), min(image.shape[0], height + 2 * pad)
    image[:bottom, :right] = 0
    origin = (pad, pad + height)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)  # fmt: skip
    return image


def write_outputs(
    loaded: LoadedImage,
    result: RestoreResult,
    output: Path,
    options: OutputOptions,
    *,
    source: Path,
    root: Path | None = None,
    aligned: bool = False,
) -> list[Path]:
    """Write the restored image (and extras); returns the paths written, main output first.

    Every file lands below `root` (the output folder the user named) through no symbolic
    link. The main output is written last: once it exists, everything for this input is on disk,
    which is what `gpen batch` reads as "already done" when a stopped run is started again.
    `source` (the input) is never written, nor any of `options.protected`.
    """
    protected = [source, *options.protected]
    overwrite = options.overwrite
    # An aligned crop comes back at the model's size, where the input's alpha no longer fits.
    final = result.image if aligned else loaded.to_output(result.image)
    written: list[Path] = []
    if options.compare:
        before = loaded.bgr8 if not aligned else cv2.resize(loaded.bgr8, final.shape[1::-1])
        written.append(
            save_image(
                compare_path(output),
                side_by_side(before, final),
                overwrite=True,
                protected=protected,
                root=root,
            )
        )
    if options.save_faces:
        folder = faces_dir(output)
        for index, (crop, restored) in enumerate(
            zip(result.input_crops, result.restored_crops, strict=True)
        ):
            for kind, image in (("input", crop), ("restored", restored)):
                path = folder / f"face{index:02d}_{kind}.png"
                written.append(
                    save_image(path, image, overwrite=True, protected=protected, root=root)
                )
    if passed_through(loaded, result, output, aligned):
        main = copy_file(loaded.path, output, overwrite=overwrite, protected=protected, root=root)
    else:
        main = save_image(
            output,
            final,
            overwrite=overwrite,
            protected=protected,
            root=root,
            metadata=loaded.metadata,
        )
    return [main, *written]


def passed_through(loaded: LoadedImage, result: RestoreResult, output: Path, aligned: bool) -> bool:
    """No face was restored and the output keeps the input's format and size: then the input
    file itself is the output, with no lossy re-encoding (and its metadata kept)."""
    return (
        not aligned
        and not result.faces
        and output.suffix.lower() == loaded.path.suffix.lower()
        and result.image.shape[:2] == loaded.pixels.shape[:2]
    )
