"""What the hardware and the network can do, to read a timing against: a face's GFLOP
through the generator and the parsing network, the device's dense half-precision peak, the
system's description, and the peak memory a configuration used.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import resource
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gpen_cli.core.version import __version__

# Dense FP16/BF16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets, by device name.
PEAK_HALF_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,  # SXM5 (device name "NVIDIA H100 80GB HBM3")
    "H200": 989.4,
}


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
    from torch.utils.flop_counter import FlopCounterMode

    from gpen_cli.stages.mask import (
        PARSENET_LAYOUT,
        PARSING_INPUT_SIZE,
        parsenet,
        segmentation_logits,
    )

    side = PARSING_INPUT_SIZE
    with torch.device("meta"):
        network = parsenet(PARSENET_LAYOUT).eval()
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
