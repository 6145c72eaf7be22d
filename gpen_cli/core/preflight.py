"""Checks that the places a command writes to can be written, made before any model loads.

A report under a file, a read-only output folder or one that cannot be created would
otherwise be found only after all the work: the promise of exit code 2 is that set-up
errors stop the command before it writes anything.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gpen_cli.core.errors import GpenError, Phrase, joined

_REPORT_HEAD = re.compile(r'\{\s*"schema_version": \d+,\s*"summary": \{')


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: Path, option: str, given: Path | None = None) -> None:
    """GpenError naming `option` and `given` (what the user typed: the folder itself, or a
    file to be written in it) unless files can be created in `folder` (or it can be made)."""
    folder = Path(folder)
    named = joined(option, f" {given or folder}")
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        raise GpenError(joined(named, f": cannot be created: {existing} is a file, not a folder"))
    if existing != folder.absolute():
        if not os.access(existing, os.W_OK | os.X_OK):
            raise GpenError(joined(named, f": cannot be created: {existing} is not writable"))
        return
    try:  # the only sure test: create a file (unnamed where the OS allows) and drop it
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise GpenError(joined(named, f": cannot write there ({exc.strerror or exc})")) from None


def check_report_path(
    report: Path | None,
    command: str,
    *,
    inputs: Iterable[Path] = (),
    overwrite: bool = False,
) -> None:
    """The report file can be written without costing the user a file.

    The report is an output like any other: a `.json` name (so it can never be a photo the
    run reads or writes), never one of `inputs`, never a link, device, FIFO or folder, and
    an existing file only with `overwrite` or when it is a report this `command` wrote (a
    resumed run rewrites its own report). Its folder must be writable.
    """
    if report is None:
        return
    report = Path(report)
    named = Phrase(f"`report` {report}", "report")
    if report.is_dir():
        raise GpenError(joined(named, ": is a folder; name a .json file"))
    if report.suffix.lower() != ".json":
        raise GpenError(joined(named, ": the report is JSON; name a .json file"))
    if os.path.lexists(report):
        _check_existing_report(report, named, command, inputs, overwrite)
    check_writable_folder(report.parent, Phrase("`report`", "report"), report)


def _check_existing_report(
    report: Path, named: str, command: str, inputs: Iterable[Path], overwrite: bool
) -> None:
    if report.is_symlink():
        raise GpenError(joined(named, ": is a symbolic link; name the file itself"))
    try:
        status = report.stat()
    except OSError as exc:
        raise GpenError(joined(named, f": cannot be read ({exc.strerror or exc})")) from None
    if not stat.S_ISREG(status.st_mode):
        raise GpenError(
            joined(named, ": is not a regular file (a device, FIFO or socket); never replaced")
        )
    for source in inputs:
        if Path(source).exists() and os.path.samefile(source, report):
            raise GpenError(joined(named, f": is the input {source}; inputs are never replaced"))
    if not overwrite and not is_report_of(report, command):
        raise GpenError(
            joined(
                named,
                Phrase(
                    f": exists and is not a report of gpen {command}; name another file, or "
                    "pass `overwrite` to replace it",
                    "overwrite",
                ),
            )
        )


def is_report_of(path: Path, command: str) -> bool:
    """Whether `path` starts as the JSON report `gpen <command>` writes (its first 4 KB,
    where the schema version and the command come first, are enough to tell)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(_REPORT_HEAD.match(head)) and f'"command": "{command}"' in head
