"""The weights files and the folders they live in: present, intact, writable, room left."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gpen_cli import weights
from gpen_cli.config import RestoreConfig
from gpen_cli.doctor.result import FAIL, PASS, WARN, CheckResult, DoctorContext, first_line

WEIGHTS_PRESENT = "weights present"
WEIGHTS_CHECKSUMS = "weights checksums"
WEIGHTS_WRITABLE = "weights folder writable"
CACHE_WRITABLE = "cache writable"
FREE_DISK = "free disk"

LOW_DISK_BYTES = 2 * 10**9
FOLDER_FIX = "pass --weights-dir or set GPEN_WEIGHTS_DIR to a writable folder"

# What a plain `gpen restore` needs, by kind.
_DEFAULTS = {
    "gpen": RestoreConfig().model,
    "detector": RestoreConfig().detector.value,
    "parsing": "parsenet",
}
_KIND_LABELS = {"gpen": "GPEN generator", "detector": "face detector", "parsing": "face parsing"}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def present_models(folder: Path) -> list[weights.ModelSpec]:
    """Registry entries whose file is in `folder`, in registry order."""
    return [spec for spec in weights.MODELS.values() if (folder / spec.filename).is_file()]


def weights_present(context: DoctorContext) -> CheckResult:
    """Which models are in the weights folder, and whether a default restore can run offline."""
    folder = context.weights_dir
    where = f"{folder} ({context.weights_dir_source})"
    found = present_models(folder)
    listing = ", ".join(
        f"{spec.name} {_megabytes((folder / spec.filename).stat().st_size)}" for spec in found
    )
    detail = f"{where}: {listing}" if found else f"{where}: no weights files"
    kinds = {spec.kind for spec in found}
    missing = {kind: name for kind, name in _DEFAULTS.items() if kind not in kinds}
    if missing:
        absent = " and ".join(_KIND_LABELS[kind] for kind in missing)
        return CheckResult(
            WEIGHTS_PRESENT,
            WARN,
            f"{detail}; no {absent} yet (fetched on first use)",
            weights.fetch_command(missing.values(), folder),
        )
    return CheckResult(WEIGHTS_PRESENT, PASS, detail)


def weights_checksums(context: DoctorContext) -> CheckResult:
    """Hash every present file against the registry's or the recorded sha256."""
    folder = context.weights_dir
    results = [weights.verify(spec.name, folder) for spec in present_models(folder)]
    if not results:
        return CheckResult(WEIGHTS_CHECKSUMS, PASS, "no weights files to verify")
    damaged = [result for result in results if result.failed]
    if damaged:
        detail = "; ".join(f"{result.name}: {result.detail}" for result in damaged)
        return CheckResult(
            WEIGHTS_CHECKSUMS,
            FAIL,
            f"corrupt or wrong file: {detail}",
            weights.fetch_command([result.name for result in damaged], folder, force=True),
        )
    verified = [result.name for result in results if result.status == "ok"]
    unknown = [result.name for result in results if result.status == "unknown"]
    detail = f"sha256 verified: {', '.join(verified) or 'none'}"
    if unknown:
        detail += f"; no known checksum for {', '.join(unknown)}"
    return CheckResult(WEIGHTS_CHECKSUMS, PASS, detail)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writability(folder: Path) -> str | None:
    """None when files can be created in `folder` (or it can be made), else why not."""
    if folder.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".gpen-doctor-"):
                pass
        except OSError as exc:
            return f"cannot create files in {folder}: {exc.strerror or first_line(exc)}"
        return None
    ancestor = _existing_ancestor(folder)
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{folder} does not exist and {ancestor} is not writable"
    return None


def weights_writable(context: DoctorContext) -> CheckResult:
    folder = context.weights_dir
    problem = _writability(folder)
    if problem:
        return CheckResult(WEIGHTS_WRITABLE, WARN, f"{problem}: downloads will fail", FOLDER_FIX)
    state = "writable" if folder.is_dir() else "absent, can be created"
    return CheckResult(WEIGHTS_WRITABLE, PASS, f"{folder}: {state}")


def cache_writable(context: DoctorContext) -> CheckResult:
    """The per-user cache, where weights go when no folder is chosen."""
    import platformdirs

    folder = platformdirs.user_cache_path("gpen-cli")
    problem = _writability(folder)
    if problem:
        return CheckResult(CACHE_WRITABLE, WARN, problem, FOLDER_FIX)
    state = "writable" if folder.is_dir() else "absent, can be created"
    return CheckResult(CACHE_WRITABLE, PASS, f"{folder}: {state}")


def free_disk(context: DoctorContext) -> CheckResult:
    """Room for more weights on the weights folder's disk (GPEN-BFR-2048 alone is large)."""
    anchor = _existing_ancestor(context.weights_dir)
    free = shutil.disk_usage(anchor).free
    detail = f"{free / 1e9:.1f} GB free on the disk of {anchor}"
    if free < LOW_DISK_BYTES:
        return CheckResult(
            FREE_DISK,
            WARN,
            f"{detail} (under {LOW_DISK_BYTES / 1e9:g} GB)",
            "free some space, or pass --weights-dir on another disk",
        )
    return CheckResult(FREE_DISK, PASS, detail)
