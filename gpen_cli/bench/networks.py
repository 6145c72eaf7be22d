"""The networks bench times: the generator the configuration names (or a seeded stand-in of
its layout) and, with upscaling, the background upsampler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gpen_cli.bench.workload import Workload
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import Phrase
from gpen_cli.pipeline.resolve import (
    generator_file,
)


def resolve_bench_model(config: RestoreConfig, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The generator `config.model` names, as the resolver finds it, and how it was obtained.

    A registry name whose weights are absent becomes seeded random weights of its config:
    timings do not depend on the weights' values, and bench never downloads.
    """
    from gpen_cli.models import load_gpen

    spec, path = generator_file(config)
    if path.is_file():
        generator = load_gpen(path)
        name = spec.name if spec is not None else path.name
        return generator, {"name": name, "weights": str(path), "config": dict(generator.config)}
    assert spec is not None  # a file that is not there was refused by the resolver
    generator = spec.random_init(seed).eval().requires_grad_(False)
    return generator, {
        "name": spec.name,
        "weights": f"random (seed {seed}): {spec.filename} is not in the weights folder",
        "config": dict(generator.config),
    }


def bench_upsampler(
    name: str, weights_dir: Path | None, scratch: Path, seed: int
) -> tuple[str, str | None]:
    """The upsampler to time and a note: a registry one whose weights are absent becomes a
    seeded random network of its shape (timings do not depend on the weights' values)."""
    from gpen_cli.weights.registry import MODELS
    from gpen_cli.weights.store import weight_path, write_random_weights

    spec = MODELS.get(name)
    if spec is None or spec.kind != "upsampler" or weight_path(name, weights_dir).is_file():
        return name, None
    path = write_random_weights(spec, scratch, seed)
    return str(path), f"random (seed {seed}) {name} weights: {spec.filename} is absent"


def add_upscaling(work: Workload, scratch: Path, seed: int) -> None:
    """Time `upscale` too: the upsampler runs on every photo of a pipeline workload."""
    from PIL import Image

    config = work.config
    if not work.pipeline:
        work.notes.append(
            Phrase("forward only: `upscale` needs photos and a detector, not timed", "upscale")
        )
        work.config = config.but(upscale=1, bg_upsampler=None)
        return
    name = config.bg_upsampler or f"realesrnet_x{config.upscale}"
    source, note = bench_upsampler(name, config.weights_dir, scratch, seed)
    work.config = config.but(bg_upsampler=source)
    pixels = 0
    for path in work.paths:
        with Image.open(path) as image:
            pixels += image.width * image.height
    work.upscaled_megapixels = pixels * config.upscale**2 / 1e6
    work.notes.append(f"upscale x{config.upscale} with {name}" + (f" ({note})" if note else ""))
