"""What `gpen restore` and `gpen batch` share around the engine: the progress of each photo,
Ctrl-C, the report, and the lines that end a run (where the outputs and the report are, and
after an interrupt how to resume)."""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
from collections.abc import Callable
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

from gpen_cli.cli.common import StopSafeProgress, console, err_console, say
from gpen_cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, OutputError
from gpen_cli.report import ReportEntry, write_report

if TYPE_CHECKING:
    from gpen_cli.batch.runner import BatchOutcome, PhotoProgress


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
    """An `on_progress` hook: a row per photo in flight saying its faces found and restored,
    and over them a bar of the photos done when there are several."""

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
            faces = f"{found} face" + ("s" if found > 1 else "")
            text = f"{name}: {faces}, restored" if found else f"{name}: no face found"
            self.progress.update(row, description=text, total=found or None)
        elif event.stage == "restored":
            self.progress.update(row, completed=event.faces_restored)


# What the first stop signal does to a run of the thread engine: the faces in the generator
# are finished and their photos written; the photos not there yet are left for a rerun.
FINISHING = "finishing the faces being restored"


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


def print_problems(entries: list[ReportEntry], quiet: bool) -> None:
    """Failures always, one line each; skips unless --quiet, those already done as a count."""
    done = 0
    for entry in entries:
        if entry.status == "failed":
            say("[bold red]error:[/]", entry.error or "")
        elif entry.reason == "already_done":
            done += 1
        elif entry.status == "skipped" and not quiet:
            say("[cyan]skipped:[/]", entry.error or "")
        if entry.note and not quiet:
            say("[yellow]note:[/]", entry.note)
    if done and not quiet:
        err_console.print(
            f"[cyan]skipped:[/] {done} already done (output exists; --overwrite redoes them)",
            highlight=False,
        )


def rerun_command(argv: list[str] | None = None) -> str:
    """The command line that started this process, quoted for a POSIX shell."""
    argv = sys.argv if argv is None else argv
    program = argv[0]
    if Path(program).name == "__main__.py":  # python -m gpen_cli
        head = [sys.executable, "-m", "gpen_cli"]
    else:
        found = shutil.which(Path(program).name)
        same = found is not None and Path(found).resolve() == Path(program).resolve()
        head = [Path(program).name if same else program]
    return shlex.join([*head, *argv[1:]])


def print_end(outputs: str, report: Path | None, interrupted: bool, overwrite: bool) -> None:
    """Where the outputs and the report are; after an interrupt, the command that resumes.

    The command gets a line of its own and is never wrapped by rich, so it copies whole.
    """
    console.print(f"outputs: {escape(outputs)}", highlight=False, soft_wrap=True)
    if report is not None:
        console.print(f"report: {escape(str(report))}", highlight=False, soft_wrap=True)
    if interrupted:
        how = (
            "--overwrite redoes every photo; without it, those written are skipped"
            if overwrite
            else "it skips the photos already written"
        )
        console.print(f"resume: run the same command again ({how}):", highlight=False)
        console.print(f"  {escape(rerun_command())}", highlight=False, soft_wrap=True)


def save_report(report: Path | None, entries: list[ReportEntry], extra: dict) -> str | None:
    """Write the report when asked; the error that stopped it, if one did (the outputs are
    written either way, so it is said rather than raised)."""
    if report is None:
        return None
    try:
        write_report(report, entries, extra)
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
    overwrite: bool,
) -> typer.Exit:
    """Write the report (`extra` and the run's figures besides the entries), say what went
    wrong, the summary and the end lines; the Exit to raise: 130 interrupted, 1 when an
    input or the report failed, else 0."""
    report_error = save_report(report, outcome.entries, {**extra, **run_figures(outcome)})
    print_problems(outcome.entries, quiet)
    if not quiet:
        summary()
    if report_error:
        say("[bold red]error:[/]", report_error)
    if not quiet or outcome.interrupted:
        written = report if report is not None and not report_error else None
        if outcome.entries and all(entry.status == "failed" for entry in outcome.entries):
            outputs = "none written"  # every input failed: no path to look for
        print_end(outputs, written, outcome.interrupted, overwrite)
    if outcome.interrupted:
        return typer.Exit(EXIT_INTERRUPTED)
    failed = report_error or any(entry.status == "failed" for entry in outcome.entries)
    return typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)
