"""Background upscaling: a super-resolution network over the whole photo, whole or in tiles.

The conversions are the official RealESRNet's (GPEN's `sr_model/real_esrnet.py`): x / 255 in
FP32, BGR to RGB, reflect padding of the bottom and right edges up to the network's side
multiple, then clamp to [0, 1], x 255 in FP32 and round half to even. A photo that fits the
memory budget runs in one piece, as the official default (`tile_size` 0) does, and gives its
pixels. A larger one runs in overlapping tiles of one shape, several per forward pass, each
contributing only its core: memory then follows the tile, not the photo.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from gpen_cli.core.devices import pick_dtype
from gpen_cli.models.upsampler import SrNet
from gpen_cli.stages.load import check_upscaled_size

# Input pixels each tile reaches past its core on every side. Chosen from tiled against
# whole-image output (docs/benchmarks.md, "Upscaling"): 8 px is where the seams vanish, and
# 16 px doubles that margin.
DEFAULT_OVERLAP = 16
# The largest tile core the automatic plan picks (input pixels a side): past this a tile
# costs memory without making the network faster.
MAX_AUTO_TILE = 512
# The smallest it picks however small the budget: below this the overlaps cost more than the
# cores they serve.
MIN_AUTO_TILE = 64
MAX_TILES_PER_FORWARD = 8
# What the upsampler may hold in activations on a CPU (bytes); on CUDA half the free memory.
CPU_BUDGET_BYTES = 2 << 30

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Tile:
    """One window of the padded input and the core of it that goes into the output."""

    y: int  # window origin in the padded input
    x: int
    core_y0: int  # core, in padded input coordinates
    core_y1: int
    core_x0: int
    core_x1: int


def _axis_spans(length: int, tile: int, overlap: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Window size and (window start, core start, core end) along one side.

    Windows all have one size, so tiles batch together: those at the edges are shifted
    inwards rather than cut, which also gives them more context, never less.
    """
    window = min(length, tile + 2 * overlap)
    spans = []
    for core_start in range(0, length, tile):
        start = min(max(core_start - overlap, 0), length - window)
        spans.append((start, core_start, min(core_start + tile, length)))
    return window, spans


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> tuple[int, int, list[Tile]]:
    """Window height, width and the tiles covering a padded input of this size."""
    window_h, rows = _axis_spans(height, tile, overlap)
    window_w, columns = _axis_spans(width, tile, overlap)
    tiles = [Tile(y, x, cy0, cy1, cx0, cx1) for y, cy0, cy1 in rows for x, cx0, cx1 in columns]
    return window_h, window_w, tiles


def activation_bytes_per_pixel(module: nn.Module, scale: int, itemsize: int) -> int:
    """A rough upper bound on what the network holds per input pixel while it runs.

    A few feature maps as wide as its widest convolution at the input's size, and the
    upsampling layers' maps at the output's: RRDBNet's dense blocks keep 5 maps of 32
    features concatenated, and its last convolutions run at scale² times the pixels.
    """
    widest = max(
        (max(m.in_channels, m.out_channels) for m in module.modules() if isinstance(m, nn.Conv2d)),
        default=64,
    )
    return itemsize * widest * (4 + scale * scale)


def memory_budget(device: torch.device) -> int:
    """Bytes the upsampler's activations may take: half the free CUDA memory, else a fixed cap.

    `GPEN_UPSCALE_BUDGET_MB` overrides it (for machines with little memory, and for tests).
    """
    override = os.environ.get("GPEN_UPSCALE_BUDGET_MB")
    if override:
        return int(float(override) * (1 << 20))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return CPU_BUDGET_BYTES


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def lanczos_upscale(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` resized `scale` times with OpenCV's Lanczos (what `--bg-upsampler none` does)."""
    height, width = image.shape[:2]
    size = (round(width * scale), round(height * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)


class Upscaler:
    """Upscales BGR uint8/uint16 photos `scale` times with an SR network, or Lanczos without one.

    A network of another scale than asked runs at its own and is brought to the asked size
    with Lanczos afterwards (as GFPGAN's --upscale does with an x4 model at 2).
    `tile` forces the tile size (input pixels a side); by default a photo runs whole when its
    activations fit the memory budget. `last_tiles` counts the tiles of the last photo.
    Calls are serialised: batch workers share one upsampler, and the budget holds for one run.
    """

    def __init__(
        self,
        net: SrNet | None,
        scale: int,
        *,
        device: torch.device,
        half: bool = False,
        tile: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
        name: str = "lanczos",
    ):
        if tile is not None and tile < 16:
            raise ValueError(f"tile must be at least 16 px, got {tile}")
        if overlap < 0:
            raise ValueError(f"the tile overlap must not be negative, got {overlap}")
        self.net = net
        self.scale = scale
        self.name = name
        self.device = device
        self.last_tiles = 0
        self._lock = threading.Lock()
        if net is None:
            return
        self.dtype = pick_dtype(device, half)
        if (self.dtype == torch.float16 and not net.supports_half) or (
            self.dtype == torch.bfloat16 and not net.supports_bfloat16
        ):
            self.dtype = torch.float32
        self.module = net.module.eval().requires_grad_(False).to(device, self.dtype)
        self.multiple = net.multiple
        self.tile = None if tile is None else _round_up(tile, net.multiple)
        self.overlap = _round_up(overlap, net.multiple)
        self.bytes_per_pixel = activation_bytes_per_pixel(
            net.module, net.scale, torch.finfo(self.dtype).bits // 8
        )

    def __call__(self, image: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """The photo `scale` times larger, same dtype; `progress(done, total)` after each pass.

        A photo whose output would pass the pixel limit on inputs raises InputError first.
        """
        check_upscaled_size(None, image.shape[1], image.shape[0], self.scale)
        if self.net is None:
            self.last_tiles = 0
            return lanczos_upscale(image, self.scale)
        with self._lock:
            upscaled = self._run(image, progress)
        if self.net.scale != self.scale:
            upscaled = lanczos_upscale(upscaled, self.scale / self.net.scale)
        return upscaled

    def _plan(self, height: int, width: int) -> tuple[int, int, list[Tile], int]:
        """Windows and tiles per forward: one whole window when it fits the budget."""
        allowed = max(1, memory_budget(self.device) // self.bytes_per_pixel)
        if self.tile is None and height * width <= allowed:
            return height, width, [Tile(0, 0, 0, height, 0, width)], 1
        tile = self.tile
        if tile is None:
            side = min(MAX_AUTO_TILE, max(math.isqrt(allowed) - 2 * self.overlap, MIN_AUTO_TILE))
            tile = _round_up(side, self.multiple)
        window_h, window_w, tiles = plan_tiles(height, width, tile, self.overlap)
        per_forward = max(1, min(MAX_TILES_PER_FORWARD, allowed // (window_h * window_w)))
        return window_h, window_w, tiles, per_forward

    @torch.inference_mode()
    def _run(self, image: np.ndarray, progress: ProgressCallback | None) -> np.ndarray:
        height, width = image.shape[:2]
        pad_h = _round_up(height, self.multiple) - height
        pad_w = _round_up(width, self.multiple) - width
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        window_h, window_w, tiles, per_forward = self._plan(*padded.shape[:2])
        self.last_tiles = len(tiles)
        top = float(np.iinfo(image.dtype).max)
        s = self.net.scale
        out = np.empty((height * s, width * s, 3), dtype=image.dtype)
        if progress is not None:
            progress(0, len(tiles))
        for first in range(0, len(tiles), per_forward):
            group = tiles[first : first + per_forward]
            windows = np.stack([padded[t.y : t.y + window_h, t.x : t.x + window_w] for t in group])
            batch = torch.from_numpy(np.ascontiguousarray(windows[..., ::-1])).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float().div_(top).to(self.dtype)
            result = self.module(batch).float().clamp_(0.0, 1.0).mul_(top).round_()
            result = result.to(torch.int32 if image.dtype == np.uint16 else torch.uint8)
            pixels = result.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1].astype(image.dtype)
            for t, tile_pixels in zip(group, pixels, strict=True):
                y0, y1 = t.core_y0, min(t.core_y1, height)
                x0, x1 = t.core_x0, min(t.core_x1, width)
                if y0 >= y1 or x0 >= x1:
                    continue  # a core entirely in the padding
                out[y0 * s : y1 * s, x0 * s : x1 * s] = tile_pixels[
                    (y0 - t.y) * s : (y1 - t.y) * s, (x0 - t.x) * s : (x1 - t.x) * s
                ]
            if progress is not None:
                progress(min(first + per_forward, len(tiles)), len(tiles))
        return out
