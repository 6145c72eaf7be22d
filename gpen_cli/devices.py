"""Which device values the tool accepts, checked before anything heavy is loaded.

The pipeline runs on the CPU or on CUDA only: torch knows more device types (mps, xla,
vulkan, hip, meta...), but the detectors, masks and kernels used here are not written or
tested for them, and several fail far into a run. They are refused up front instead.
"""

from __future__ import annotations

import re

from gpen_cli.errors import GpenError

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
