"""The weights files and the folders they live in: present, intact, writable, room left."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.doctor.result import FAIL, PASS, WARN, CheckResult, DoctorContext, first_line
from gpen_cli.weights import download, registry, store, verify

WEIGHTS_PRESENT = "weights present"
WEIGHTS_CHECKSUMS = "weights checksums"
WEIGHTS_WRITABLE = "weights folder writable"
FREE_DISK = "free disk"

LOW_DISK_BYTES = 2 * 10**9
FOLDER_FIX = "pass --weights-dir or set GPEN_WEIGHTS_DIR to a writable folder"

# What each check a file passed is called in the doctor's lines.
_CHECK_WORDS = {
    "published sha256": "published sha256",
    "sha256 recorded at download": "recorded sha256",
    "layout and values": "layout and values",
    "sha256 recorded at download + layout and values": "recorded sha256, layout and values",
}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def present_models(folder: Path) -> list[registry.ModelSpec]:
    """Registry entries whose file is in `folder`, in registry order."""
    return [spec for spec in registry.MODELS.values() if (folder / spec.filename).is_file()]


def restore_needs() -> tuple[dict[str, str], str]:
    """What `gpen restore` with no pipeline flag needs here (kind → name or file), with the
    user's defaults (config file, GPEN_* variables) applied, and a note when they are
    unusable (the built-in defaults are checked then)."""
    from gpen_cli.core import settings
    from gpen_cli.pipeline.resolve import networks

    try:
        return networks(settings.default_config()), ""
    except GpenError:
        return networks(RestoreConfig()), " (the built-in defaults: the config is unusable)"


def weights_present(context: DoctorContext) -> CheckResult:
    """Which models are in the weights folder, and whether `gpen restore` with the current
    defaults has every file it needs without a download."""
    folder = context.weights_dir
    found = present_models(folder)
    listing = ", ".join(
        f"{spec.name} {_megabytes((folder / spec.filename).stat().st_size)}" for spec in found
    )
    detail = f"{folder} ({context.weights_dir_source}): {listing or 'no weights files'}"
    needed, note = restore_needs()
    missing = download.needed_specs(needed, folder)  # a model given as a file exists
    if missing:
        names = ", ".join(spec.name for spec in missing)
        return CheckResult(
            WEIGHTS_PRESENT,
            WARN,
            f"{detail}; `gpen restore`{note} also needs {names} (downloaded on first use)",
            f"{store.fetch_command([spec.name for spec in missing], folder)}; offline: "
            f"{store.add_command(folder)}",
        )
    names = ", ".join(needed.values())
    return CheckResult(
        WEIGHTS_PRESENT, PASS, f"{detail}; `gpen restore`{note} needs {names}: all here"
    )


def weights_checksums(context: DoctorContext) -> CheckResult:
    """Check every present file: its published or recorded sha256, or its structure, and
    say which check each file passed."""
    folder = context.weights_dir
    results = [verify.verify(spec.name, folder) for spec in present_models(folder)]
    if not results:
        return CheckResult(WEIGHTS_CHECKSUMS, PASS, "no weights files to verify")
    damaged = [result for result in results if result.failed]
    if damaged:
        detail = "; ".join(f"{result.name}: {result.detail}" for result in damaged)
        return CheckResult(
            WEIGHTS_CHECKSUMS,
            FAIL,
            f"corrupt or wrong file: {detail}",
            store.fetch_command([result.name for result in damaged], folder, force=True),
        )
    passed = [
        f"{result.name} ({_CHECK_WORDS.get(result.check, result.check)})"
        for result in results
        if result.status == "ok"
    ]
    unknown = [result.name for result in results if result.status == "unknown"]
    detail = f"checked: {', '.join(passed) or 'none'}"
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
