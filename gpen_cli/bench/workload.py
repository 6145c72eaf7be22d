"""What is timed: the configurations (batch sizes under the faithful baseline) and the
workload they all restore — real photos through the whole pipeline, or random aligned crops
through the forward and mask alone when no detector weights are at hand — with stand-in
weights written where the real ones are absent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gpen_cli.core.config import MaskKind, RestoreConfig
from gpen_cli.core.errors import GpenError, Phrase, joined
from gpen_cli.pipeline import resolve
from gpen_cli.stages.load import READABLE_EXTENSIONS

SHARED_DIR_ENV = "GPEN_SHARED_DIR"


DEFAULT_PHOTOS = ("solvay_conference_1927.png", "portrait_small.jpg", "group_small.jpg")


IMAGE_SUFFIXES = READABLE_EXTENSIONS  # what `gpen batch` reads, one list


def config_label(config: RestoreConfig, dtype: torch.dtype, compiled: bool) -> str:
    """How a configuration runs the generator, e.g. "fast bf16 b4 eager"."""
    path = "onnxruntime" if config.runtime == "onnxruntime" else "exact" if config.exact else "fast"
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    mode = "compiled" if compiled else "eager"
    if config.compile_model and not compiled:
        mode = "eager (compile failed)"
    return f"{path} {precision} b{config.batch_size} {mode}"


def plan_configs(base: RestoreConfig, batch_sizes: Sequence[int]) -> list[RestoreConfig]:
    """The faithful baseline (torch, exact, FP32, batch 1, eager) first, then the user's
    configuration at each requested batch size (duplicates dropped)."""
    faithful = dict(batch_size=1, half=False, compile_model=False, exact=True, runtime="torch")
    configs = [base.but(**faithful)]
    for batch_size in batch_sizes:
        config = base.but(batch_size=batch_size)
        if config not in configs:
            configs.append(config)
    return configs


@dataclass
class Workload:
    """What each configuration restores: photos through the whole pipeline, or bare crops.

    `config` is the user's, with the weights that had to be random (parsing, upsampler) in
    their place.
    """

    config: RestoreConfig
    paths: list[Path] = field(default_factory=list)
    detector: Any = None
    crops: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    upscaled_megapixels: float = 0.0  # output megapixels a pass upscales

    @property
    def pipeline(self) -> bool:
        return self.detector is not None


def default_photos() -> list[Path]:
    """The shared benchmark photos ($GPEN_SHARED_DIR/assets/images) that are present."""
    shared = os.environ.get(SHARED_DIR_ENV, "").strip()
    if not shared:
        return []
    folder = Path(shared) / "assets" / "images"
    return [folder / name for name in DEFAULT_PHOTOS if (folder / name).is_file()]


def photos_in(folder: Path) -> list[Path]:
    if folder.exists() and not folder.is_dir():
        problem = "a file, not a folder; name the folder of photos"
    elif not folder.is_dir():
        problem = "no such folder"
    elif not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        problem = f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it"
    else:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    raise GpenError(Phrase(f"`images` {folder}: {problem}", "images"))


def astronaut_photo(folder: Path) -> Path | None:
    """scikit-image's astronaut portrait written as a PNG, when scikit-image is installed."""
    try:
        from skimage import data
    except ImportError:
        return None
    path = folder / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def detector_weights_present(config: RestoreConfig) -> bool:
    """Whether the detector can run without a download (bench never downloads)."""
    from gpen_cli.weights.registry import get_spec
    from gpen_cli.weights.store import weight_path

    name = get_spec(config.detector.value, "detector").name
    return weight_path(name, config.weights_dir).is_file()


class NoDetector:
    """Stands in for a detector when only random crops are timed: it is never called."""

    def detect(self, image_bgr: np.ndarray) -> list:
        raise RuntimeError("the forward-only benchmark has no photos to detect faces in")


def stand_in_weights_dir(
    config: RestoreConfig, scratch: Path, seed: int
) -> tuple[Path | None, list[str]]:
    """The folder holding the weights of ParseNet (parsing mask) and of the scoring networks
    (`score`), and a note for each that had to be random.

    Like the generator, an absent one becomes seeded random weights: timings do not depend
    on the weights' values, and bench never downloads. When one is absent, the folder is a
    scratch one with the present files linked in beside the random ones.
    """
    from gpen_cli.weights.registry import get_spec
    from gpen_cli.weights.store import weight_path, write_random_weights

    needed = ["parsenet"] if config.mask is MaskKind.PARSING else []
    needed += ["arcface", "hyperiqa"] if config.scoring else []
    absent = [name for name in needed if not weight_path(name, config.weights_dir).is_file()]
    if not absent:
        return config.weights_dir, []
    for name in needed:
        spec = get_spec(name)
        if name in absent:
            write_random_weights(spec, scratch, seed)
        elif not (scratch / spec.filename).exists():
            (scratch / spec.filename).symlink_to(weight_path(name, config.weights_dir))
    return scratch, [f"random (seed {seed}) {name} weights: they are absent" for name in absent]


def random_crops(count: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def build_workload(
    config: RestoreConfig,
    *,
    size: int,
    images: Path | None,
    faces: int,
    seed: int,
    scratch: Path,
) -> Workload:
    """Photos and a detector when both are there; random crops (said in the notes) when not."""
    mask_dir, notes = stand_in_weights_dir(config, scratch, seed)
    paths = photos_in(images) if images is not None else default_photos()
    if not paths and images is None:
        astronaut = astronaut_photo(scratch)
        paths = [astronaut] if astronaut else []
    missing = None
    if not paths:
        missing = Phrase(f"no photos (set ${SHARED_DIR_ENV} or `images`)", "images")
    elif not detector_weights_present(config):
        missing = f"no {config.detector.value} detector weights in the weights folder"
    if missing:
        notes.append(joined(missing, f": forward only, {faces} random crops"))
        crops = random_crops(faces, size, seed)
        return Workload(config.but(weights_dir=mask_dir), crops=crops, notes=notes)
    return Workload(
        config.but(weights_dir=mask_dir),
        paths=paths,
        detector=resolve.load_detector(config, resolve.torch_device(config)),
        notes=notes + [f"photos: {', '.join(p.name for p in paths)}"],
    )
