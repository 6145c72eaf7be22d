"""Timing one configuration: untimed warm-up, then `repeats` passes of the pipeline (or the
forward alone), each stage's median, faces per second, and the share of the device's peak.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import torch
from torch import nn

from gpen_cli.bench.figures import PeakMemory, device_peak_tflops, parsing_gflop_per_face
from gpen_cli.bench.workload import NoDetector, Workload, config_label, random_crops
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.timing import StageClock
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.registry import stage_names


def pipeline_pass(work: Workload, restorer: FaceRestorer, clock: StageClock) -> int:
    """Restore every photo once through the restorer's own stages; returns the face count.

    The faces of all photos go through the models together, as `gpen batch` packs them.
    """
    from gpen_cli.stages.load import load_image

    with clock.stage("decode"):
        loaded = [load_image(path) for path in work.paths]
    prepared = [restorer.prepare(image.pixels) for image in loaded]
    crops = [crop for item in prepared for crop in item.model_inputs]
    restored = restorer.forward(crops)
    results, start = [], 0
    for item in prepared:
        count = len(item.model_inputs)
        results.append(restorer.finish(item, restored[start : start + count]).image)
        start += count
    with clock.stage("encode"):
        for path, result in zip(work.paths, results, strict=True):
            cv2.imencode(path.suffix.lower() or ".png", result)
    return len(crops)


def forward_pass(work: Workload, restorer: FaceRestorer, clock: StageClock) -> int:
    """The forward (and mask) stage alone, on the workload's random crops."""
    restorer.forward(work.crops)
    return len(work.crops)


def warm_up(work: Workload, restorer: FaceRestorer) -> None:
    """Untimed: first-call allocations, kernel selection for every image size, lazy init.

    The detector sees every photo once; one batch goes through the generator and mask.
    """
    from gpen_cli.stages.load import load_image

    for path in work.paths:
        restorer.detector.detect(load_image(path).bgr8)
    restorer.forward(random_crops(restorer.batch_size, restorer.size, seed=1))


@dataclass
class ConfigResult:
    label: str
    batch_size: int
    dtype: str
    exact: bool
    compile_requested: bool
    compiled: bool
    setup_s: float
    faces: int
    stages_s: dict[str, float]  # medians over the repeats
    total_s: float
    faces_per_s: float
    s_per_face: float
    forward_faces_per_s: float
    forward_s_per_face: float
    mask_s_per_face: float | None
    speedup: float | None = 1.0  # forward faces/s over the faithful baseline's (None: no face)
    pipeline_speedup: float | None = 1.0
    peak_rss_mb: float = 0.0
    cuda_peak_mb: float | None = None
    tflops: float | None = None
    peak_fraction: float | None = None
    mask_tflops: float | None = None
    upscale_tiles_per_s: float | None = None
    upscale_mp_per_s: float | None = None  # output megapixels


class TileCounter:
    """An `on_tile` callback that counts the tiles the upsampler ran."""

    def __init__(self) -> None:
        self.tiles = 0

    def __call__(self, done: int, total: int) -> None:
        if done == total:
            self.tiles += total

    def take(self) -> int:
        tiles, self.tiles = self.tiles, 0
        return tiles


def _median_stages(passes: Sequence[dict[str, float]]) -> dict[str, float]:
    return {
        name: statistics.median(p.get(name, 0.0) for p in passes)
        for name in stage_names()
        if name in passes[0]
    }


def _per_face(seconds: float | None, faces: int) -> float:
    return seconds / faces if faces and seconds is not None else float("nan")


def run_config(
    config: RestoreConfig,
    base_model: nn.Module,
    work: Workload,
    repeats: int,
    memory: PeakMemory,
    on_step: Callable[[str], None] = lambda step: None,
) -> ConfigResult:
    """Set up one configuration, warm it up, then time `repeats` passes; `on_step` is told
    each step as it begins ("setting up", "warming up", "run 2 of 3")."""
    on_step("setting up")
    memory.reset()
    started = time.perf_counter()
    clock = StageClock()
    tiles = TileCounter()
    restorer = FaceRestorer(
        base_model,
        work.detector if work.pipeline else NoDetector(),
        config=config,
        clock=clock,
        on_tile=tiles,
    )
    setup_s = time.perf_counter() - started
    run = pipeline_pass if work.pipeline else forward_pass
    generator = restorer.generator
    label = config_label(config, generator.dtype, generator.compiled)
    on_step(f"{label}: warming up")
    warm_up(work, restorer)
    passes = []
    for repeat in range(max(1, repeats)):
        on_step(f"{label}: run {repeat + 1} of {max(1, repeats)}")
        clock.take()
        tiles.take()
        faces = run(work, restorer, clock)
        passes.append(clock.take())
    stages = _median_stages(passes)
    upscale_s = stages.get("upscale", 0.0)
    total = statistics.median(sum(p.values()) for p in passes)
    forward_per_face = _per_face(stages["forward"], faces)
    result = ConfigResult(
        label=label,
        batch_size=config.batch_size,
        dtype=str(generator.dtype).replace("torch.", ""),
        exact=config.exact,
        compile_requested=config.compile_model,
        compiled=generator.compiled,
        setup_s=setup_s,
        faces=faces,
        stages_s=stages,
        total_s=total,
        faces_per_s=faces / total if total > 0 else float("nan"),
        s_per_face=_per_face(total, faces),
        forward_faces_per_s=1 / forward_per_face if forward_per_face > 0 else float("nan"),
        forward_s_per_face=forward_per_face,
        mask_s_per_face=_per_face(stages.get("mask"), faces) if "mask" in stages else None,
        peak_rss_mb=memory.rss_mb(),
        cuda_peak_mb=memory.cuda_mb(),
    )
    if upscale_s > 0:
        result.upscale_tiles_per_s = tiles.take() / upscale_s
        result.upscale_mp_per_s = work.upscaled_megapixels / upscale_s
    del restorer
    return result


def add_device_utilisation(
    result: ConfigResult, gflop: float | None, info: Mapping[str, Any]
) -> None:
    """Achieved TFLOP/s in the forward and the mask, and the forward's fraction of the
    device's peak when known."""
    if result.mask_s_per_face and result.mask_s_per_face > 0:
        result.mask_tflops = parsing_gflop_per_face() / result.mask_s_per_face / 1e3
    if gflop is None or not result.forward_s_per_face > 0:
        return
    result.tflops = gflop / result.forward_s_per_face / 1e3
    peak = device_peak_tflops(str(info.get("gpu", "")), getattr(torch, result.dtype))
    if peak is not None:
        result.peak_fraction = result.tflops / peak
