"""`gpen bench`: time every stage of the pipeline under several forward configurations.

Each configuration (batch size, precision, compiled or not, exact or fast) restores the same
workload through `FaceRestorer` itself, the code `gpen restore` and `gpen batch` run: real
photos through decode, detect, align, forward, mask, paste and encode, or, when no detector
weights are at hand, random aligned crops through the forward and mask alone. Warm-up runs
are not timed; every figure is the median of `repeats` passes. The faithful path (exact
formulation, FP32, batch 1, eager) is always measured and every speed-up is relative to it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from gpen_cli.core.config import MaskKind, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.core.memory import cap_batch_size
from gpen_cli.core.timing import StageClock
from gpen_cli.core.version import __version__
from gpen_cli.pipeline.resolve import (
    generator_file,
    gpen_model_for_size,
    load_detector,
    torch_device,
)
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.chain import STAGE_NAMES
from gpen_cli.stages.load import READABLE_EXTENSIONS

logger = logging.getLogger(__name__)

SHARED_DIR_ENV = "GPEN_SHARED_DIR"
DEFAULT_PHOTOS = ("solvay_conference_1927.png", "portrait_small.jpg", "group_small.jpg")
IMAGE_SUFFIXES = READABLE_EXTENSIONS  # what `gpen batch` reads, one list

# Dense FP16/BF16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets, by device name.
PEAK_HALF_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,  # SXM5 (device name "NVIDIA H100 80GB HBM3")
    "H200": 989.4,
}


# --------------------------------------------------------------------------- figures


def gflop_per_face(config: Mapping[str, Any]) -> float:
    """GFLOP (2 per multiply-add) of one GPEN forward, counted layer by layer.

    Counts every convolution, blur and linear layer as the official generator runs them,
    so the published figures come out: 276 GFLOP for GPEN-BFR-512, 17.4 for GPEN-BFR-256.
    """
    from gpen_cli.models.gpen import channel_table

    size, style_dim = int(config["size"]), int(config.get("style_dim", 512))
    channels = channel_table(
        int(config.get("channel_multiplier", 2)), float(config.get("narrow", 1.0))
    )
    blur_taps = 16
    log_size = size.bit_length() - 1
    macs = size * size * 3 * channels[size]  # ecd0, 1x1
    for level in range(log_size, 2, -1):  # encoder: blur, then 3x3 stride 2
        res = 2**level
        macs += (res + 1) ** 2 * channels[res] * blur_taps
        macs += (res // 2) ** 2 * 9 * channels[res] * channels[res // 2]
    macs += channels[4] * 16 * style_dim + int(config.get("n_mlp", 8)) * style_dim**2
    macs += 16 * 9 * channels[4] ** 2 + 16 * 2 * channels[4] * 3 + style_dim * 3 * channels[4]
    for level in range(3, log_size + 1):  # decoder: up conv + blur, conv, to_rgb
        res, low = 2**level, channels[2 ** (level - 1)]
        high = channels[res]
        macs += (res // 2) ** 2 * 9 * 2 * low * high + (res + 1) ** 2 * high * blur_taps
        macs += res * res * 9 * 2 * high * high + res * res * 2 * high * 3
        macs += style_dim * (2 * low + 4 * high)
    return 2 * macs / 1e9


@functools.cache
def parsing_gflop_per_face() -> float:
    """GFLOP (2 per multiply-add) of one ParseNet mask at 512 px, counted by torch.

    The network is built on the meta device, so counting allocates nothing.
    """
    from facexlib.parsing.parsenet import ParseNet
    from torch.utils.flop_counter import FlopCounterMode

    from gpen_cli.stages.mask import PARSING_INPUT_SIZE, PARSING_LABELS, segmentation_logits

    side = PARSING_INPUT_SIZE
    with torch.device("meta"):
        network = ParseNet(in_size=side, out_size=side, parsing_ch=PARSING_LABELS).eval()
        probe = torch.zeros(1, 3, side, side)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        segmentation_logits(network, probe)
    return counter.get_total_flops() / 1e9


def device_peak_tflops(device_name: str, dtype: torch.dtype) -> float | None:
    """Dense FP16/BF16 peak of a known accelerator; None for other devices or dtypes."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    for key in sorted(PEAK_HALF_TFLOPS, key=len, reverse=True):  # most specific name first
        if key in device_name:
            return PEAK_HALF_TFLOPS[key]
    return None


def cpu_model_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def system_info(device: torch.device) -> dict[str, Any]:
    """Where the figures were measured: hardware and library versions."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "gpen_cli": __version__,
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


class PeakMemory:
    """Peak resident memory of this process (getrusage) and peak CUDA allocation, per span.

    On Linux the RSS high-water mark is reset between configurations (/proc/self/clear_refs);
    elsewhere it is the process's peak so far, which `rss_is_per_config` says.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.rss_is_per_config = True

    def reset(self) -> None:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.rss_is_per_config = False
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def rss_mb(self) -> float:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB

    def cuda_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


# --------------------------------------------------------------------------- what is run


def config_label(config: RestoreConfig, dtype: torch.dtype, compiled: bool) -> str:
    """How a configuration runs the generator, e.g. "fast bf16 b4 eager"."""
    path = "exact" if config.exact else "fast"
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    mode = "compiled" if compiled else "eager"
    if config.compile_model and not compiled:
        mode = "eager (compile failed)"
    return f"{path} {precision} b{config.batch_size} {mode}"


def plan_configs(base: RestoreConfig, batch_sizes: Sequence[int]) -> list[RestoreConfig]:
    """The faithful baseline (exact, FP32, batch 1, eager) first, then the user's
    configuration at each requested batch size (duplicates dropped)."""
    configs = [base.but(batch_size=1, half=False, compile_model=False, exact=True)]
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
        raise GpenError(f"--images {folder}: a file, not a folder; name the folder of photos")
    if not folder.is_dir():
        raise GpenError(f"--images {folder}: no such folder")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise GpenError(f"--images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
    return photos


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
        missing = f"no photos (set ${SHARED_DIR_ENV} or --images)"
    elif not detector_weights_present(config):
        missing = f"no {config.detector.value} detector weights in the weights folder"
    if missing:
        notes.append(f"{missing}: forward only, {faces} random crops")
        crops = random_crops(faces, size, seed)
        return Workload(config.but(weights_dir=mask_dir), crops=crops, notes=notes)
    return Workload(
        config.but(weights_dir=mask_dir),
        paths=paths,
        detector=load_detector(config, torch_device(config)),
        notes=notes + [f"photos: {', '.join(p.name for p in paths)}"],
    )


# --------------------------------------------------------------------------- timing


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
    speedup: float = 1.0  # forward faces/s over the faithful baseline's
    pipeline_speedup: float = 1.0
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
        for name in STAGE_NAMES
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


# --------------------------------------------------------------------------- model


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
        work.notes.append("forward only: --upscale needs photos and a detector, not timed")
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


# --------------------------------------------------------------------------- the run


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
        result.speedup = result.forward_faces_per_s / baseline.forward_faces_per_s
        result.pipeline_speedup = result.faces_per_s / baseline.faces_per_s
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


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def table_rows(report: BenchReport, detailed: bool = True) -> tuple[list[str], list[list[str]]]:
    """Column names and rows: every stage when `detailed` (markdown), else what fits 80 columns.

    The short form keeps the end-to-end rate, the speed-up ("×"), where the time goes
    (generator and mask, per face) and memory (device memory on CUDA); `--json` and
    `--markdown` carry the rest.
    """
    stages = [s for s in STAGE_NAMES if s in report.results[0].stages_s]
    mask = any(r.mask_s_per_face is not None for r in report.results)
    upscaled = any(r.upscale_mp_per_s is not None for r in report.results)
    cuda = report.results[0].cuda_peak_mb is not None
    header = ["configuration", "faces/s", "× faithful" if detailed else "×", "GPEN s/face"]
    header += ["mask s/face"] if mask else []
    header += (["s/face"] + [f"{s} s" for s in stages]) if detailed else []
    header += ["upscale tiles/s", "upscale MP/s"] if upscaled and detailed else []
    header += ["peak RSS MB"] if detailed or not cuda else []
    header += (
        (["CUDA peak MB", "TFLOP/s", "% of peak"] if detailed else ["CUDA MB", "% peak"])
        if cuda
        else []
    )
    rows = []
    for r in report.results:
        fraction = None if r.peak_fraction is None else 100 * r.peak_fraction
        row = [
            r.label,
            _fmt(r.faces_per_s),
            _fmt(r.pipeline_speedup),
            _fmt(r.forward_s_per_face, 3),
        ]
        row += [_fmt(r.mask_s_per_face, 3)] if mask else []
        row += (
            ([_fmt(r.s_per_face, 3)] + [_fmt(r.stages_s[s], 3) for s in stages]) if detailed else []
        )
        row += (
            [_fmt(r.upscale_tiles_per_s), _fmt(r.upscale_mp_per_s, 3)]
            if upscaled and detailed
            else []
        )
        row += [f"{r.peak_rss_mb:.0f}"] if detailed or not cuda else []
        if cuda:
            row += (
                [f"{r.cuda_peak_mb:.0f}"]
                + ([_fmt(r.tflops, 1)] if detailed else [])
                + [_fmt(fraction, 1)]
            )
        rows.append(row)
    return header, rows


def describe(report: BenchReport) -> list[str]:
    """The lines that say what was measured, where, and how."""
    from gpen_cli.core.words import count

    s, m = report.system, report.model
    where = (
        s.get("gpu")
        or f"{s['cpu']}, {s['cpu_count']} logical CPUs, {s['torch_threads']} torch threads"
    )
    first = report.results[0]
    lines = [
        f"model: {m['name']} ({m['config'].get('size')} px), weights: {m['weights']}",
        f"device: {s['device']} — {where}",
        f"versions: python {s['python']}, torch {s['torch']}, numpy {s['numpy']}, "
        f"opencv {s['opencv']}, gpen-cli {s['gpen_cli']}",
        f"workload: {report.mode}, {count(first.faces, 'face')}, "
        f"median of {count(report.repeats, 'run')} after a warm-up",
        "×: faces/s over the first row's, the faithful baseline (official layers, FP32, batch 1)",
    ]
    if report.gflop_per_face:
        cost = f"cost: GPEN {report.gflop_per_face:.1f} GFLOP a face"
        if report.mask_gflop_per_face:
            cost += f", parsing mask {report.mask_gflop_per_face:.1f} GFLOP a face"
        lines.append(cost)
    if not report.rss_is_per_config:
        lines.append("peak RSS is the process's peak so far, not per configuration")
    return lines + [f"note: {note}" for note in report.notes]


def markdown(report: BenchReport) -> str:
    header, rows = table_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + [""] + [f"- {line}" for line in describe(report)]) + "\n"
