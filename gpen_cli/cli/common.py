"""What every command shares: the consoles, one-line errors, common options."""

from __future__ import annotations

import functools
import logging
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
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
from rich.segment import Segment
from rich.table import Column
from rich.text import Text

from gpen_cli.core.config import ConfigError
from gpen_cli.core.errors import EXIT_USAGE, GpenError, Phrase, message_of
from gpen_cli.core.words import count

# No emoji codes: user text such as "cuda:abc:" must print as typed, not as a picture.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])

WeightsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        help="Folder holding weights files. Default: $GPEN_WEIGHTS_DIR, else weights_dir in "
        "the config file, else the user data folder (see `gpen weights list`).",
        show_default=False,
    ),
]


def say(label: str, message: str) -> None:
    """One line on stderr: a styled `label` (markup) and `message` printed literally.

    Messages carry user paths and text; "[draft]" or "a[/]" in them must print as typed,
    never be read as rich markup. A setting the library names is said by its flag.
    """
    message = in_flags(message)
    err_console.print(f"{label} {escape(message)}", highlight=False, soft_wrap=True)


def in_flags(message: str) -> str:
    """`message` with each setting it names (a Phrase's) said as its command-line flag."""
    if not isinstance(message, Phrase):
        return message
    from gpen_cli.cli.options import flag  # options builds on this module

    return message.words(flag)


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
            raise fail(message_of(exc)) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Route the package's log records to stderr through rich."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    handler = RichHandler(console=err_console, show_time=False, show_path=False)
    handler.addFilter(_flags_in_record)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


def _flags_in_record(record: logging.LogRecord) -> bool:
    """Keep every record; a library warning that names a setting says it by its flag."""
    record.msg = in_flags(record.msg)
    return True


class StopSafeProgress(Progress):
    """A Progress whose lines end two columns short of the terminal's edge.

    The terminal echoes a Ctrl-C as "^C" where the cursor is: at the end of a full-width
    bar that wraps to a new line, the redraw then starts a line too low, and a stale copy of
    the bar stays above what is printed next (the `stopping:` line).
    """

    def get_renderables(self) -> Iterable[RenderableType]:
        yield _ShortOfEdge(self.make_tasks_table(self.tasks))


class _ShortOfEdge:
    """`renderable` drawn, and cut, two columns narrower than the space it is given."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width - 2)
        lines = console.render_lines(self.renderable, options.update_width(width), pad=False)
        for number, line in enumerate(lines):
            if number:
                yield Segment.line()
            yield from Segment.adjust_line_length(line, width, pad=False)


def rate_progress(unit: str, quiet: bool, eta: ProgressColumn | None = None) -> Progress:
    """A progress bar on stderr counting `unit` (photos, frames) and the faces restored,
    with their rate and an ETA (`eta`, else one from the bar's own rate); give its task the
    fields `faces` and `rate`."""
    # The words keep their width and the bar takes what is left: rich's fixed 40-cell bar
    # wrapped the rate onto a second line at 80 columns.
    whole = Column(no_wrap=True)
    return StopSafeProgress(
        TextColumn("{task.description}", table_column=whole),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=4)),
        MofNCompleteColumn(table_column=whole),
        TextColumn(unit + ",", table_column=whole),
        FacesColumn(table_column=whole),
        *([eta] if eta else [TextColumn("ETA", table_column=whole), TimeRemainingColumn()]),
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


def shell_lines(words: list[str], width: int) -> list[str]:
    """Shell words (already quoted) indented, in lines of at most `width` characters broken
    between words by a backslash: the lines copied together paste as one command. A word
    too long for a line gets one of its own, whole."""
    lines, line = [], "  "
    for word in words:
        if line.strip() and len(line) + 1 + len(word) + 2 > width:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line = f"{line} {word}" if line.strip() else line + word
    return [*lines, line]
