"""Checks that the places a command writes to can be written, made before any model loads.

A report under a file, a read-only output folder or one that cannot be created would
otherwise be found only after all the work: the promise of exit code 2 is that set-up
errors stop the command before it writes anything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gpen_cli.errors import GpenError


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: Path, option: str, given: Path | None = None) -> None:
    """GpenError naming `option` and `given` (what the user typed: the folder itself, or a
    file to be written in it) unless files can be created in `folder` (or it can be made)."""
    folder = Path(folder)
    named = f"{option} {given or folder}"
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        raise GpenError(f"{named}: cannot be created: {existing} is a file, not a folder")
    if existing != folder.absolute():
        if not os.access(existing, os.W_OK | os.X_OK):
            raise GpenError(f"{named}: cannot be created: {existing} is not writable")
        return
    try:  # the only sure test: create a file (unnamed where the OS allows) and drop it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise GpenError(f"{named}: cannot write there ({exc.strerror or exc})") from None


def check_report_path(report: Path | None) -> None:
    """The --report file can be written: not a folder, in a folder that can hold it."""
    if report is None:
        return
    report = Path(report)
    if report.is_dir():
        raise GpenError(f"--report {report}: is a folder; name a .json file")
    check_writable_folder(report.parent, "--report", report)
