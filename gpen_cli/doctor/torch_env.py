"""torch itself: version, the device faces run on, reduced precision, torch.compile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gpen_cli.doctor.result import (
    FAIL,
    PASS,
    WARN,
    CheckResult,
    DoctorContext,
    first_line,
    release,
)

TORCH_VERSION = "torch version"
DEVICE = "device"
HALF = "fp16 / bf16"
COMPILE = "torch.compile"

TORCH_FIX = "pip install 'torch>=2.4'"
CUDA_FIX = (
    "with an NVIDIA GPU, install a CUDA build of torch: https://pytorch.org/get-started/locally/"
)
DRIVER_FIX = "install or update the NVIDIA driver (nvidia-smi must list the GPU)"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Removes what only a CUDA build uses: the nvidia-* libraries and triton.
_DROP_CUDA = "pip uninstall -y $(pip freeze | grep -oE '^(nvidia-[^=]+|triton)')"
COMPILE_FIX = "run without --compile (needs a C++ compiler on CPU, triton on CUDA)"
# Seconds the tiny compiled function may take, imports included; a cold compile on a small
# CPU takes ~25 s.
COMPILE_BUDGET_S = 60.0

_TORCH_MIN = (2, 1)
# Relative error a 32x32 matmul may show in each reduced precision (fp16 ~1e-3, bf16 ~1e-2).
_HALF_TOLERANCE = {"float16": 1e-2, "bfloat16": 5e-2}

_COMPILE_PROBE = """
import sys, torch
device = sys.argv[1]
function = torch.compile(lambda x: torch.sin(x) * 2 + 1)
x = torch.linspace(-3, 3, 64, device=device)
assert torch.allclose(function(x), torch.sin(x) * 2 + 1, atol=1e-5), "compiled result differs"
"""


def _device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_version(context: DoctorContext) -> CheckResult:
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    version = release(torch.__version__)
    if version is None or version < _TORCH_MIN:
        return CheckResult(
            TORCH_VERSION,
            FAIL,
            f"torch {torch.__version__} ({build}); gpen-cli needs >= 2.1",
            TORCH_FIX,
        )
    return CheckResult(TORCH_VERSION, PASS, f"torch {torch.__version__} ({build})")


def _cudnn_version(raw: int | None) -> str:
    if not raw:
        return "none"
    if raw >= 90000:  # cuDNN 9 numbers versions as major*10000 + minor*100 + patch
        return f"{raw // 10000}.{raw // 100 % 100}.{raw % 100}"
    return f"{raw // 1000}.{raw // 100 % 10}.{raw % 100}"


def device(context: DoctorContext) -> CheckResult:
    """The CUDA device faces run on by default, or why it is the CPU."""
    import torch

    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        cudnn = _cudnn_version(torch.backends.cudnn.version())
        detail = (
            f"cuda:{index} {props.name}, compute capability {props.major}.{props.minor}, "
            f"{props.total_memory / 2**30:.1f} GiB, cuDNN {cudnn}"
        )
        return CheckResult(DEVICE, PASS, detail)
    threads = f"CPU ({torch.get_num_threads()} threads)"
    if not torch.version.cuda:
        detail = f"{threads}: torch is a CPU-only build, so each face takes seconds"
        return CheckResult(DEVICE, WARN, detail, CUDA_FIX)
    if nvidia_gpu_present():
        detail = (
            f"{threads}: an NVIDIA GPU is here but torch's CUDA {torch.version.cuda} cannot "
            "use it (driver missing or too old), so each face takes seconds"
        )
        return CheckResult(DEVICE, WARN, detail, DRIVER_FIX)
    size = cuda_libraries_bytes()
    libraries = f"{size / 1e9:.1f} GB" if size else "about 3 GB"
    detail = (
        f"{threads}: no GPU found, so each face takes seconds. The CUDA {torch.version.cuda} "
        f"libraries installed with torch ({libraries}) are unused here"
    )
    return CheckResult(DEVICE, WARN, detail, f"to save {libraries}: {cpu_build_command()}")


def cpu_build_command() -> str:
    """Replace torch and torchvision by the CPU builds of the same versions (no other
    package touched), then drop the CUDA libraries."""
    import importlib.metadata

    pins = []
    for package in ("torch", "torchvision"):
        try:
            pins.append(f"{package}=={importlib.metadata.version(package).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            continue
    install = f"pip install --force-reinstall --no-deps {' '.join(pins)} --index-url {CPU_INDEX}"
    return f"{install} && {_DROP_CUDA}"


def nvidia_gpu_present() -> bool:
    """Whether the kernel sees an NVIDIA GPU (Linux: its driver lists one), whatever torch
    makes of it."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def cuda_libraries_bytes() -> int:
    """The size of the nvidia-* packages pip installed beside torch (0 when none)."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return sum(
        path.stat().st_size
        for folder in folders
        for path in Path(folder).rglob("*")
        if path.is_file() and not path.is_symlink()
    )


def half_precision(context: DoctorContext) -> CheckResult:
    """A tiny matmul in fp16 and bf16 on the device, compared with fp32."""
    import torch

    device_name = _device_name()
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(32, 32, generator=generator).to(device_name)
    right = torch.randn(32, 32, generator=generator).to(device_name)
    expected = left @ right
    scale = expected.abs().max().item()
    notes, broken = [], []
    for dtype in (torch.float16, torch.bfloat16):
        label = str(dtype).removeprefix("torch.")
        try:
            product = (left.to(dtype) @ right.to(dtype)).float()
            error = (product - expected).abs().max().item() / scale
        except RuntimeError as exc:
            broken.append(label)
            notes.append(f"{label} fails ({first_line(exc)[:80]})")
            continue
        if not error <= _HALF_TOLERANCE[label]:
            broken.append(label)
            notes.append(f"{label} off by {error:.2g}")
        else:
            notes.append(f"{label} ok ({error:.1e})")
    detail = f"matmul on {device_name}: " + ", ".join(notes)
    if not broken:
        return CheckResult(HALF, PASS, detail)
    # --half is opt-in: a broken half precision only rules that option out.
    return CheckResult(
        HALF, WARN, detail, f"do not use --half ({', '.join(broken)} unusable on {device_name})"
    )


def _stop(process: subprocess.Popen) -> None:
    """Kill the probe and the compile workers it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        process.kill()
    process.communicate()


def torch_compile(context: DoctorContext) -> CheckResult:
    """Compile and run a tiny function in a child process, within COMPILE_BUDGET_S.

    A child process, because a broken compiler toolchain can hang or crash the interpreter,
    and only a process can be stopped when the budget runs out.
    """
    device_name = _device_name()
    budget = COMPILE_BUDGET_S
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _COMPILE_PROBE, device_name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, errors = process.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        _stop(process)
        detail = f"a tiny compiled function did not finish within {budget:g} s on {device_name}"
        return CheckResult(
            COMPILE, WARN, detail, "run without --compile here (its first run is slow)"
        )
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        lines = [line for line in errors.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        return CheckResult(
            COMPILE, WARN, f"cannot compile on {device_name}: {reason[:200]}", COMPILE_FIX
        )
    return CheckResult(
        COMPILE, PASS, f"compiled and ran a tiny function on {device_name} in {elapsed:.1f} s"
    )
