"""Atomic, no-replace file writes and the clean-up of what an interrupted write leaves.

Every file the tool writes (images, crops, reports) goes through `write_atomically`: the bytes
go to a hidden ".<name>.<8 hex>.partial" file beside the target, are fsynced, then published
under the final name. Where that temporary name would be longer than the file system allows
a name to be, while the final name is not, "<name>" is shortened to its start and a hash of the
whole name ("<start>~<12 hex>"): a temporary name fits wherever the final name fits, and the
partials of a target are still told from those of any other. Without `overwrite` the
publishing step itself refuses an existing target (a hard link fails on an existing name;
Windows' rename does too), so two processes writing the same name cannot both succeed,
whatever they saw when they checked beforehand.

Kept free of heavy imports: the CLI loads it at start-up.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import time
from pathlib import Path

from gpen_cli.core.errors import OutputError, Phrase

logger = logging.getLogger(__name__)

PARTIAL_MARKER = ".partial"
_PARTIAL_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}" + re.escape(PARTIAL_MARKER))
# The longest file name, in bytes, where the system cannot say (ext4, XFS, APFS, NTFS...).
DEFAULT_NAME_MAX = 255
_HASH_CHARS = 12
# Errors of os.link that mean "this filesystem has no hard links", not "the name exists".
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def name_max(folder: Path) -> int:
    """The longest file name `folder` takes, in bytes (its file system's, else 255)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no folder yet
        return DEFAULT_NAME_MAX


def name_too_long(path: Path) -> str | None:
    """Why the name of `path` cannot be created (longer than its file system allows), or
    None when it fits: said before any work, not after a photo is restored."""
    path = Path(path)
    folder = _existing_folder(path.parent)
    limit = name_max(folder)
    size = len(os.fsencode(path.name))
    if size <= limit:
        return None
    return f"{path}: the name is {size} bytes, longer than the {limit} a file name may have here"


def _existing_folder(folder: Path) -> Path:
    """`folder` or its nearest existing parent, whose file system will hold the name."""
    for candidate in (folder, *folder.parents):
        try:
            if candidate.is_dir():
                return candidate
        except OSError:
            continue
    return Path(".")


def partial_key(target: Path, marker: str = PARTIAL_MARKER) -> str:
    """The "<name>" of the module docstring for `target`: its name, or where the temporary
    name ".<name>.<8 hex><marker>" would not fit, the name's start and a hash of all of it."""
    target = Path(target)
    name = os.fsencode(target.name)
    room = name_max(_existing_folder(target.parent)) - 1 - 9 - len(os.fsencode(marker))
    if len(name) <= room:
        return target.name
    digest = hashlib.sha256(name).hexdigest()[:_HASH_CHARS]
    start = name[: max(0, room - 1 - _HASH_CHARS)].decode("utf-8", "ignore")
    return f"{start}~{digest}"


def partial_path(target: Path) -> Path:
    """A new temporary name beside `target`, as the module docstring describes."""
    target = Path(target)
    return target.with_name(f".{partial_key(target)}.{secrets.token_hex(4)}{PARTIAL_MARKER}")


def is_partial_file(path: Path) -> bool:
    """Whether `path` is a temporary file left by an interrupted write."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(PARTIAL_MARKER)


def remove_partials_of(target: Path, older_than: float | None = None) -> list[Path]:
    """Delete the temporary files an interrupted write of `target` left beside it.

    Only those named after `target`: the folder may hold the user's own files, or another
    run's temporary files for other names. `older_than` (seconds) spares those modified
    more recently, where no lock keeps out another process writing the same name now (a
    download into a shared weights folder).
    """
    target = Path(target)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no folder yet: nothing was left
        return removed
    key = partial_key(target)
    for entry in entries:
        match = _PARTIAL_NAME.fullmatch(entry.name)
        if match is None or match.group("target") != key:
            continue
        try:
            if older_than is not None and time.time() - entry.stat().st_mtime < older_than:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot remove stale temporary file %s: %s", entry.path, exc)
            continue
        removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d temporary files left by a stopped run", len(removed))
    return removed


def write_atomically(path: Path, data: bytes | memoryview, *, overwrite: bool = False) -> None:
    """Write `data` to `path` in one step; OutputError when it cannot (or exists, without
    `overwrite`). Nothing is left under any name when it fails or is interrupted."""
    path = Path(path)
    temporary = partial_path(path)
    try:
        # Mode 0o666 lets the umask decide the permissions, as for any new file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temporary, flags, 0o666)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _publish_without_replacing(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError) and os.path.islink(path):
            raise OutputError(
                Phrase(
                    f"{path} exists (a symbolic link, not followed); pass `overwrite` to "
                    "replace the link itself",
                    "overwrite",
                )
            ) from None
        if isinstance(exc, FileExistsError):
            raise OutputError(
                Phrase(
                    f"{path} exists (written meanwhile by another process); "
                    "pass `overwrite` to replace it",
                    "overwrite",
                )
            ) from None
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _publish_without_replacing(temporary: Path, path: Path) -> None:
    """Give `temporary` the name `path`; FileExistsError when `path` exists by then."""
    if os.name == "nt":
        os.rename(temporary, path)  # Windows' rename never replaces
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A filesystem without hard links (FAT, some network shares): check, then rename.
        # Another writer could slip in between; nothing better is portable there.
        if path.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.replace(temporary, path)
        return
    temporary.unlink()
