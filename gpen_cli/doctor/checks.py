"""The list of checks, in the order they are shown, and the runner that never raises."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gpen_cli.core.words import count
from gpen_cli.doctor import (
    config_file,
    numerics,
    packages,
    ray_extra,
    selftest,
    storage,
    torch_env,
)
from gpen_cli.doctor.result import (
    FAIL,
    PASS,
    WARN,
    CheckResult,
    DoctorContext,
    failure_from_exception,
)


@dataclass(frozen=True)
class Check:
    """A named check; `run` imports what it needs itself, so a broken package fails only it."""

    name: str
    run: Callable[[DoctorContext], CheckResult]


# numpy first: on a broken install it is the line that matters, and it needs nothing else.
CHECKS: tuple[Check, ...] = (
    Check(packages.NUMPY_VERSION, packages.numpy_version),
    Check(packages.OPENCV, packages.opencv_numpy),
    Check(packages.NUMBA, packages.numba_numpy),
    Check(packages.TORCH_BRIDGE, packages.torch_numpy),
    Check(numerics.ALIGNMENT, numerics.alignment_dtypes),
    Check(numerics.WARP, numerics.warp_round_trip),
    Check(numerics.GRID_SAMPLE, numerics.grid_sample_identity),
    Check(torch_env.TORCH_VERSION, torch_env.torch_version),
    Check(torch_env.DEVICE, torch_env.device),
    Check(torch_env.HALF, torch_env.half_precision),
    Check(torch_env.COMPILE, torch_env.torch_compile),
    Check(config_file.CONFIG_FILE, config_file.config_file),
    Check(storage.WEIGHTS_PRESENT, storage.weights_present),
    Check(storage.WEIGHTS_CHECKSUMS, storage.weights_checksums),
    Check(storage.WEIGHTS_WRITABLE, storage.weights_writable),
    Check(storage.FREE_DISK, storage.free_disk),
    Check(selftest.SELF_TEST, selftest.self_test),
    Check(ray_extra.RAY_EXTRA, ray_extra.ray_extra),
)


def run_check(check: Check, context: DoctorContext) -> CheckResult:
    """The check's result; an exception it raises becomes a FAIL carrying its text."""
    try:
        return check.run(context)
    except Exception as exc:  # the doctor reports every failure, it never crashes on one
        return failure_from_exception(check.name, exc)


def summary_line(results: Iterable[CheckResult]) -> str:
    """'N passed, N warnings, N failed' ("1 warning" for one)."""
    statuses = [result.status for result in results]
    return (
        f"{statuses.count(PASS)} passed, {count(statuses.count(WARN), 'warning')}, "
        f"{statuses.count(FAIL)} failed"
    )
