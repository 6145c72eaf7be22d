"""What `gpen restore` and `gpen batch` share around the engine: the progress of each photo,
Ctrl-C, the report, and the lines that end a run (where the outputs and the report are, and
after an interrupt how to resume)."""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from gpen_cli.cli.common import StopSafeProgress, console, err_console, in_flags, say, shell_lines
from gpen_cli.core.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, OutputError
from gpen_cli.core.words import count
from gpen_cli.pipeline.report import ReportEntry, naming, write_report

if TYPE_CHECKING:
    from gpen_cli.batch.engine import BatchOutcome, PhotoProgress
    from gpen_cli.pipeline.outputs import OutputOptions


def photo_progress(quiet: bool) -> Progress:
    """The display of `gpen restore`: a row per photo in flight, tiles when upscaling."""
    return StopSafeProgress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )


class PhotoRows:
    """An `on_progress` hook: a row per photo in flight saying what it is doing (finding
    faces, restoring them, saving), gone once the photo is written, and over them a bar of
    the photos done when there are several."""

    def __init__(self, progress: Progress, photos: int) -> None:
        self.progress = progress
        self.overall = progress.add_task("Restoring", total=photos, visible=photos >= 2)
        self.rows: dict[str, TaskID] = {}

    def __call__(self, event: PhotoProgress) -> None:
        if event.stage == "done":
            row = self.rows.pop(event.source, None)
            if row is not None:
                self.progress.remove_task(row)
            self.progress.update(self.overall, completed=event.photos_done)
            return
        name = escape(Path(event.source).name)
        row = self.rows.get(event.source)
        if row is None:
            row = self.progress.add_task(f"{name}: finding faces", total=None)
            self.rows[event.source] = row
        if event.stage == "found":
            found = event.faces_found
            text = (
                f"{name}: {count(found, 'face')}, restoring" if found else f"{name}: no face found"
            )
            self.progress.update(row, description=text, total=found or None)
        elif event.stage == "restored":
            self.progress.update(row, completed=event.faces_restored)
            if event.faces_restored >= event.faces_found:  # pasting and writing remain
                faces = count(event.faces_found, "face")
                self.progress.update(row, description=f"{name}: {faces} restored, saving")


def stop_handlers(
    stopping: str, left: str = ""
) -> tuple[Callable[[signal.Signals], None], Callable[[], None]]:
    """What the first and the second stop signal print (`stopping`: what the first one
    does; `left`: what the second one leaves). Ctrl-C is named only to who pressed it."""

    def on_first(signum: signal.Signals) -> None:
        if signum == signal.SIGINT:
            again = "press Ctrl-C again to stop now"
        else:
            again = f"a second {signum.name} stops at once"
        err_console.print(f"[yellow]stopping:[/] {stopping}; {again}", highlight=False)

    def on_second() -> None:
        err_console.show_cursor(True)
        err_console.print(f"\n[red]stopped[/]{escape(left)}", highlight=False)

    return on_first, on_second


# Skipped because the output is there already: counted in one line, not named one by one.
DONE_BEFORE = ("already_done", "exists")


def print_problems(entries: list[ReportEntry], quiet: bool) -> None:
    """Failures always, one line each; skips unless --quiet, each naming its input, those
    whose output exists as one count."""
    done = 0
    for entry in entries:
        if entry.status == "failed":
            say("[bold red]error:[/]", entry.error or "")
        elif entry.reason in DONE_BEFORE:
            done += 1
        elif entry.status == "skipped" and not quiet:
            say("[cyan]skipped:[/]", naming(entry.input, entry.error or "skipped"))
        if entry.note and not quiet:
            say("[yellow]note:[/]", entry.note)
    if done and not quiet:
        outputs = "output exists" if done == 1 else "outputs exist"
        say(f"[cyan]{done} skipped:[/]", f"{outputs} (--overwrite to redo)")


def rerun_argv(argv: list[str] | None = None) -> list[str]:
    """The command line that started this process, as a shell would run it again."""
    argv = sys.argv if argv is None else argv
    program = argv[0]
    if Path(program).name == "__main__.py":  # python -m gpen_cli
        head = [sys.executable, "-m", "gpen_cli"]
    else:
        found = shutil.which(Path(program).name)
        same = found is not None and Path(found).resolve() == Path(program).resolve()
        head = [Path(program).name if same else program]
    return [*head, *argv[1:]]


def command_lines(argv: list[str], width: int) -> list[str]:
    """`argv` quoted for a POSIX shell, indented, in lines of at most `width` characters
    broken between arguments by a backslash: the lines copied together paste as one command.
    An argument too long for a line gets one of its own, whole."""
    return shell_lines([shlex.quote(word) for word in argv], width)


def extras_written(entries: list[ReportEntry], options: OutputOptions) -> list[str]:
    """End lines saying where --compare and --save-faces wrote: beside the outputs."""
    from gpen_cli.pipeline.outputs import COMPARE_FOLDER, FACES_FOLDER

    lines = []
    for asked, label, folder, statuses in (
        (options.compare, "compare", COMPARE_FOLDER, ("ok", "no_face")),
        (options.save_faces, "faces", FACES_FOLDER, ("ok",)),
    ):
        parents = {Path(e.output).parent for e in entries if e.output and e.status in statuses}
        if not asked or not parents:
            continue
        if len(parents) == 1:
            lines.append(f"{label}: {parents.pop() / folder}")
        else:
            lines.append(f"{label}: {folder} beside each output ({len(parents)} folders)")
    return lines


def print_end(
    outputs: str,
    report: Path | None,
    interrupted: bool,
    overwrite: bool,
    extras: Sequence[str] = (),
) -> None:
    """Where the outputs, their `extras` and the report are; after an interrupt, the command
    that resumes, broken between arguments so it copies whole (rich never wraps these lines).
    """
    console.print(f"outputs: {escape(outputs)}", highlight=False, soft_wrap=True)
    for line in extras:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if report is not None:
        console.print(f"report: {escape(str(report))}", highlight=False, soft_wrap=True)
    if interrupted:
        how = (
            "--overwrite redoes every photo; without it, those written are skipped"
            if overwrite
            else "it skips the photos already written"
        )
        console.print(f"resume: run the same command again ({how}):", highlight=False)
        for line in command_lines(rerun_argv(), console.width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def save_report(report: Path | None, entries: list[ReportEntry], extra: dict) -> str | None:
    """Write the report when asked; the error that stopped it, if one did (the outputs are
    written either way, so it is said rather than raised)."""
    if report is None:
        return None
    # The report speaks to the same user as the terminal: settings said as flags there too.
    worded = [replace(e, error=in_flags(e.error)) if e.error else e for e in entries]
    try:
        write_report(report, worded, extra)
    except OutputError as exc:  # e.g. the disk filled up
        return str(exc)
    return None


def run_figures(outcome: BatchOutcome) -> dict:
    """What the report says about the run as a whole."""
    return {
        "interrupted": outcome.interrupted,
        "seconds": round(outcome.seconds, 3),
        "faces_restored": outcome.faces,
        "faces_per_second": round(outcome.faces_per_second, 3),
    }


def conclude(
    outcome: BatchOutcome,
    *,
    report: Path | None,
    extra: dict,
    quiet: bool,
    summary: Callable[[], None],
    outputs: str,
    written: OutputOptions,
) -> typer.Exit:
    """Write the report (`extra` and the run's figures besides the entries), say what went
    wrong, the summary and the end lines (where the outputs and the extras `written` asked
    for went); the Exit to raise: 130 interrupted, 1 when an input or the report failed,
    else 0."""
    report_error = save_report(report, outcome.entries, {**extra, **run_figures(outcome)})
    print_problems(outcome.entries, quiet)
    if not quiet:
        summary()
    if report_error:
        say("[bold red]error:[/]", report_error)
    if not quiet or outcome.interrupted:
        saved = report if report is not None and not report_error else None
        if outcome.entries and all(entry.status == "failed" for entry in outcome.entries):
            outputs = "none written"  # every input failed: no path to look for
        extras = extras_written(outcome.entries, written)
        print_end(outputs, saved, outcome.interrupted, written.overwrite, extras)
    if outcome.interrupted:
        return typer.Exit(EXIT_INTERRUPTED)
    failed = report_error or any(entry.status == "failed" for entry in outcome.entries)
    return typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)
