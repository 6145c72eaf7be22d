"""What every command shares: the consoles, one-line errors, common options."""

from __future__ import annotations

import functools
import logging
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from gpen_cli.config import ConfigError
from gpen_cli.errors import EXIT_USAGE, GpenError
from gpen_cli.words import count

# No emoji codes: user text such as "cuda:abc:" must print as typed, not as a picture.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])

WeightsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        help="Folder holding weights files. Default: $GPEN_WEIGHTS_DIR, ./weights when present, "
        "else the user cache folder.",
        show_default=False,
    ),
]


def say(label: str, message: str) -> None:
    """One line on stderr: a styled `label` (markup) and `message` printed literally.

    Messages carry user paths and text; "[draft]" or "a[/]" in them must print as typed,
    never be read as rich markup.
    """
    err_console.print(f"{label} {escape(message)}", highlight=False, soft_wrap=True)


def print_wrapped(line: str, indent: str = "  ") -> None:
    """`line` on stdout, wrapped between words to the terminal (continuation lines indented):
    a word longer than a line, such as a path, is never cut but keeps a line of its own."""
    lines = textwrap.wrap(
        line,
        width=console.width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    for part in lines or [""]:
        console.print(part, markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one red line on stderr and return the Exit to raise."""
    say("[bold red]error:[/]", message)
    return typer.Exit(code)


def one_line_errors(func: F) -> F:
    """Turn a GpenError raised by a command into a one-line message and exit code 2; a
    refused configuration setting is named by its flag."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            from gpen_cli.cli.options import flag

            raise fail(f"{flag(exc.setting)}: {exc.problem}") from None
        except GpenError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Route the package's log records to stderr through rich."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    handler = RichHandler(console=err_console, show_time=False, show_path=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


def rate_progress(unit: str, quiet: bool) -> Progress:
    """A progress bar on stderr counting `unit` (photos, frames) and the faces restored,
    with their rate and an ETA; give its task the fields `faces` and `rate`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit + ","),
        FacesColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )


class FacesColumn(ProgressColumn):
    """The faces restored so far ("1 face", "3 faces") and their rate, of a `rate_progress`
    task."""

    def render(self, task: Task) -> Text:
        faces = count(task.fields["faces"], "face")
        return Text(f"{faces}, {task.fields['rate']:.2f} faces/s", style="progress.data")


def update_rate(progress: Progress) -> None:
    """Recompute the faces/s of the first task of a `rate_progress` bar."""
    task = progress.tasks[0]
    elapsed = task.elapsed or 0.0
    rate = task.fields["faces"] / elapsed if elapsed > 0 else 0.0
    progress.update(task.id, rate=rate)
