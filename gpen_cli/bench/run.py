"""The run: plan the configurations, time each on the same workload, and sum them up in a
`BenchReport` whose speed-ups are relative to the faithful baseline.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpen_cli.bench.figures import PeakMemory, gflop_per_face, parsing_gflop_per_face, system_info
from gpen_cli.bench.networks import add_upscaling, resolve_bench_model
from gpen_cli.bench.timing import ConfigResult, add_device_utilisation, run_config
from gpen_cli.bench.workload import Workload, build_workload, plan_configs
from gpen_cli.core.config import MaskKind, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.core.memory import cap_batch_size
from gpen_cli.pipeline.resolve import (
    gpen_model_for_size,
    torch_device,
)

logger = logging.getLogger(__name__)


@dataclass
class BenchReport:
    system: dict[str, Any]
    model: dict[str, Any]
    mode: str  # "pipeline" or "forward only"
    notes: list[str]
    repeats: int
    gflop_per_face: float | None
    mask_gflop_per_face: float | None
    rss_is_per_config: bool
    results: list[ConfigResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _capped_sizes(sizes: Sequence[int], face_size: int) -> tuple[list[int], list[str]]:
    """The batch sizes capped by memory (duplicates dropped), and a line for each cap."""
    kept: list[int] = []
    lines = []
    for size in sizes:
        capped, line = cap_batch_size(size, face_size)
        if line:
            logger.warning("%s", line)
            lines.append(line)
        if capped not in kept:
            kept.append(capped)
    return kept, lines


def unfilled_batches(configs: Sequence[RestoreConfig], faces: int, photos: bool) -> list[str]:
    """A warning for each configuration whose batch the workload's faces cannot fill: it
    times batches of `faces`, the same forward as a smaller batch size would, so its row
    says nothing of its own batch size. `photos`: the faces are the photos', not crops."""
    lines = []
    for config in configs:
        if 0 < faces < config.batch_size:
            held = f"{faces} face" + ("s" if faces > 1 else "")
            fill = "photos with more faces fill it" if photos else "more crops fill it"
            lines.append(
                f"batch size {config.batch_size} never fills: the workload holds {held} a "
                f"run, so its row times batches of {faces} ({fill})"
            )
            logger.warning("%s", lines[-1])
    return lines


def _time_configs(
    configs: Sequence[RestoreConfig],
    base_model: nn.Module,
    work: Workload,
    repeats: int,
    memory: PeakMemory,
    on_step: Callable[[str], None] | None,
) -> list[ConfigResult]:
    """Each configuration's result, the faithful baseline first; once it has counted the
    faces, a warning for each batch size they cannot fill."""
    results: list[ConfigResult] = []
    for number, config in enumerate(configs, 1):
        where = f"configuration {number} of {len(configs)}"

        def step(text: str, where: str = where) -> None:
            if on_step is not None:
                on_step(f"{where}: {text}")

        results.append(run_config(config, base_model, work, repeats, memory, step))
        if number == 1:
            work.notes.extend(unfilled_batches(configs, results[0].faces, work.pipeline))
    return results


def run_bench(
    config: RestoreConfig,
    *,
    model: str | None = None,
    size: int | None = None,
    batch_sizes: Sequence[int] = (),
    images: Path | None = None,
    repeats: int = 3,
    faces: int | None = None,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> BenchReport:
    """Time the faithful baseline and `config` at each batch size on one workload.

    `model` (a registry name or a file), else `size` (the registry's generator of that
    size), replaces `config.model`; the resolver finds it, and a registry file that is
    absent is timed with random weights, so bench needs no download. `on_step` is
    told each step as it begins ("configuration 2 of 3: fast fp32 b4 eager: run 1 of 3").
    """
    if repeats < 1:
        raise GpenError(f"repeats must be at least 1, got {repeats}")
    device = torch_device(config)
    if model is not None or size is not None:
        config = config.but(model=model if model is not None else gpen_model_for_size(size))
    base_model, model_info = resolve_bench_model(config, seed)
    if size is not None and model is not None and base_model.size != size:
        raise GpenError(f"size {size}, but {model_info['name']} is a {base_model.size} px model")
    from gpen_cli.core.devices import default_batch_size

    sizes, capped = _capped_sizes(
        list(batch_sizes) or [default_batch_size(device, base_model.size)], base_model.size
    )
    memory = PeakMemory(device)
    with tempfile.TemporaryDirectory(prefix="gpen-bench-") as scratch:
        work = build_workload(
            config,
            size=base_model.size,
            images=images,
            faces=faces or max(sizes),
            seed=seed,
            scratch=Path(scratch),
        )
        work.notes.extend(capped)
        if config.upscale > 1:
            add_upscaling(work, Path(scratch), seed)
        configs = plan_configs(work.config, sizes)
        results = _time_configs(configs, base_model, work, repeats, memory, on_step)
    return summarise(results, work, model_info, device, repeats, memory)


def summarise(
    results: list[ConfigResult],
    work: Workload,
    model_info: dict[str, Any],
    device: torch.device,
    repeats: int,
    memory: PeakMemory,
) -> BenchReport:
    """The report: speed-ups over the baseline, use of the device, and what to know."""
    layout = model_info["config"]
    gflop = gflop_per_face(layout) if layout else None
    info = system_info(device)
    baseline = results[0]
    for result in results:
        result.speedup = _ratio(result.forward_faces_per_s, baseline.forward_faces_per_s)
        result.pipeline_speedup = _ratio(result.faces_per_s, baseline.faces_per_s)
        add_device_utilisation(result, gflop, info)
    notes = list(work.notes)
    if "random" in model_info["weights"]:
        notes.append("random weights: timings are valid, the pictures are not restored")
    if not baseline.faces:
        notes.append("no face was found in the photos: nothing reached the generator")
    parsing = work.config.mask is MaskKind.PARSING
    return BenchReport(
        system=info,
        model=model_info,
        mode="pipeline" if work.pipeline else "forward only",
        notes=notes,
        repeats=repeats,
        gflop_per_face=gflop,
        mask_gflop_per_face=parsing_gflop_per_face() if parsing else None,
        rss_is_per_config=memory.rss_is_per_config,
        results=results,
    )


def _ratio(rate: float, baseline: float) -> float | None:
    """A speed-up over the baseline; None (shown as "–") where the baseline restored no face."""
    return rate / baseline if baseline else None
