"""What the `gpen` command does with an error nobody foresaw: one line, the trace in a file.

A traceback tells a user nothing they can act on and buries the one line that matters; the
trace is still what a bug report needs, so it is kept in the user's log folder and the line
says where. Ctrl-C is not an error: Typer turns it into exit code 130 before it gets here.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpen_cli.core.errors import EXIT_SOME_FAILED


def log_folder() -> Path:
    """Where traces are kept: the user's log folder for gpen-cli (platformdirs)."""
    import platformdirs

    return platformdirs.user_log_path("gpen-cli")


def save_trace(exc: BaseException) -> Path | None:
    """Write the full trace of `exc` to a new file in `log_folder()`; None when it cannot be."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = log_folder() / f"error-{stamp}-{os.getpid()}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return None
    return path


@contextmanager
def unexpected_errors_in_one_line() -> Iterator[None]:
    """Within the block, an exception that escapes becomes one line on stderr naming where
    its trace was saved, and exit code 1; SystemExit and KeyboardInterrupt pass through."""
    try:
        yield
    except Exception as exc:
        from gpen_cli.cli.common import say

        path = save_trace(exc)
        where = f"full trace in {path}" if path else "its trace could not be saved"
        say("[bold red]error:[/]", f"unexpected {type(exc).__name__}: {exc} ({where})")
        raise SystemExit(EXIT_SOME_FAILED) from None
