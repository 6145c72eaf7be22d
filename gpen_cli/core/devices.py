"""The device policy: which devices the tool accepts, which one and which precision a run
uses, how its networks share a CPU.

The pipeline runs on the CPU or on CUDA only: torch knows more device types (mps, xla,
vulkan, hip, meta...), but the detectors, masks and kernels used here are not written or
tested for them, and several fail far into a run. They are refused up front instead, by a
check that imports nothing heavy (torch is imported by the functions that need it).
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from gpen_cli.core.errors import GpenError, Phrase

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_SUPPORTED = re.compile(r"auto|cpu|cuda(?::\d+)?")


def usable_devices() -> list[str]:
    """The device values that work on this machine."""
    import torch  # only here: checking a valid value must not cost the torch import

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    return names


def check_device(device: str) -> str:
    """`device` when it names a supported device, else GpenError listing them.

    Only the spelling is checked here, without importing torch (a second or more), so a
    typo is refused at once; whether CUDA is present is found when the models load.
    """
    if not _SUPPORTED.fullmatch(device):
        raise GpenError(f"{device} is not supported; use one of auto, cpu, cuda, cuda:N")
    return device


def pick_device(device: str = "auto") -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU.

    Raises GpenError for device types the pipeline does not support, ValueError for a CUDA
    device this machine does not have.
    """
    import torch

    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{device}: CUDA is not available on this machine")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"{device}: this machine has {torch.cuda.device_count()} CUDA devices "
            f"(use one of {', '.join(usable_devices())})"
        )
    return resolved


def default_batch_size(device: torch.device, size: int) -> int:
    """Enough faces to keep the device busy without running out of memory."""
    if device.type == "cuda":
        return max(1, 16 * (512 // max(size, 256)) ** 2) if size <= 512 else 4
    return 4


def cpu_has_fast_bf16() -> bool:
    """Does oneDNN run BF16 natively here (AVX512-BF16, AMX)? Emulated BF16 is slower than FP32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(device: torch.device, half: bool) -> torch.dtype:
    """FP32 unless asked: FP16 on CUDA, BF16 on a CPU that runs it natively.

    Half precision rounds differently and so changes pixels, so it is never a default: the
    default output is the official FP32 one on every device (docs/benchmarks.md has the PSNR).
    """
    import torch

    if not half:
        return torch.float32
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    logger.warning(
        Phrase("`half`: this %s has no native BF16 support; running in FP32", "half"), device.type
    )
    return torch.float32


def use_channels_last(device: torch.device, exact: bool) -> bool:
    """NHWC activations: faster convolutions and blurs for the fast path (CPU and CUDA alike).

    The exact path keeps the official layout, which it reshapes freely.
    """
    return not exact and device.type in ("cpu", "cuda")


def compile_mode(device: torch.device) -> str:
    """CUDA graphs suit the forward's repeated same-shape batches; the CPU has none."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def torch_turn(device: torch.device) -> AbstractContextManager:
    """What a stage holds while its networks run: on a CPU, one lock for them all.

    Each thread that runs a torch operator on the CPU gets a team of intra-op threads as wide
    as the cores: detection in the engine's prepare threads and the generator in its forward
    thread at once would run twice as many busy threads as there are cores, evicting each
    other's caches. Taking turns, each network has every core; decoding, alignment and
    paste-back (NumPy, OpenCV) still overlap them. A GPU runs its work queued from any thread,
    so there nothing is held.
    """
    return threading.Lock() if device.type == "cpu" else nullcontext()
