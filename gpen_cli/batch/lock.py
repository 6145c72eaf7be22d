"""One `gpen batch` at a time per output folder.

Two runs on the same folders would each decide "not done yet" for the same photos, remove
each other's temporary files as stale and fail each other's writes. The first run holds an
OS lock on the output folder, released when the process ends, even when killed; a second
run is refused with one line.

On Linux and macOS the lock is `flock` on the folder itself, so nothing is added to the
output tree. Where a folder cannot be locked (Windows, some network filesystems) filelock
locks a hidden ".gpen-batch.lock" file in it instead, which then stays there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from gpen_cli.core.errors import GpenError

LOCK_NAME = ".gpen-batch.lock"
_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}


def _busy(folder: Path) -> GpenError:
    return GpenError(
        f"-o {folder}: another gpen batch is writing to this folder; "
        "let it finish, or choose another output folder"
    )


def _lock_folder_itself(folder: Path, stack: ExitStack) -> bool:
    """flock the folder; False where this OS or filesystem cannot lock a folder."""
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    stack.callback(os.close, fd)  # closing the descriptor releases the lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            raise _busy(folder) from None
        return False
    return True


@contextmanager
def output_folder_lock(folder: Path) -> Iterator[None]:
    """Hold the output folder's lock within the block (the folder is created if absent; a
    block that fails before anything is written there, as a Ray that does not start, leaves
    no empty folder behind)."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GpenError(f"-o {folder}: cannot create this folder ({exc.strerror or exc})") from None
    with _locked(folder):
        try:
            yield
        except BaseException:
            if created:  # removed while still locked: no other run can be starting in it
                with suppress(OSError):  # not empty: something was written, and is kept
                    folder.rmdir()
            raise


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with ExitStack() as stack:
        if not _lock_folder_itself(folder, stack):
            lock = FileLock(folder / LOCK_NAME, timeout=0, thread_local=False)
            try:
                stack.enter_context(lock)
            except Timeout:
                raise _busy(folder) from None
            except OSError as exc:
                raise GpenError(
                    f"-o {folder}: cannot lock this folder ({exc.strerror or exc})"
                ) from None
        yield
