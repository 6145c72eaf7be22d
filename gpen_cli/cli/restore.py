"""`gpen restore`: restore the faces of one or more photos."""

from __future__ import annotations

import os
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    console,
    in_flags,
    one_line_errors,
    print_wrapped,
    setup_logging,
)
from gpen_cli.cli.runs import (
    DONE_BEFORE,
    PhotoRows,
    conclude,
    photo_progress,
    stop_handlers,
)
from gpen_cli.cli.tiles import TileProgress
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError, message_of
from gpen_cli.core.words import count
from gpen_cli.pipeline.report import Reason, ReportEntry, review_line, summarize, upscale_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from gpen_cli.batch import BatchOutcome
    from gpen_cli.batch.engine import Engine
    from gpen_cli.batch.job import PhotoJob
    from gpen_cli.batch.scan import Task


def plan_outputs(inputs: list[Path], output: Path | None, ext: str) -> list[Path]:
    """Output path of each input. `-o` is a folder when it is one, has no extension, or
    several inputs share it; otherwise it is the output file of a single input."""
    from gpen_cli.stages.save import WRITABLE_EXTENSIONS

    as_folder = None
    if output is not None:
        as_folder = output.is_dir() or not output.suffix
        if not as_folder and len(inputs) > 1:
            raise GpenError(
                f"-o {output}: {len(inputs)} inputs need an output folder; name one without "
                "an extension (it is created)"
            )
        if not as_folder and output.suffix.lower() not in WRITABLE_EXTENSIONS:
            raise GpenError(
                f"-o {output}: cannot write {output.suffix} files; "
                f"use one of {', '.join(WRITABLE_EXTENSIONS)}"
            )
    paths = targets(inputs, output, ext, as_folder)
    for path in paths:
        _refuse_too_long(path, output)
        _refuse_input_as_output(path, inputs)
    seen: dict[Path, Path] = {}
    for source, path in zip(inputs, paths, strict=True):
        if path in seen:
            raise GpenError(
                f"{seen[path]} and {source} would both be written to {path}; use separate folders"
            )
        seen[path] = source
    return paths


def targets(
    inputs: list[Path], output: Path | None, ext: str, as_folder: bool | None
) -> list[Path]:
    """Where each input's result goes, unchecked."""
    from gpen_cli.stages.save import output_path_for

    return [output_path_for(source, output, ext=ext, is_dir_output=as_folder) for source in inputs]


def earlier_outputs(inputs: list[Path], output: Path | None, ext: str) -> dict[Path, Path]:
    """Inputs that are another input's default output (`photo_gpen.jpg` beside `photo.jpg`
    when `gpen restore *.jpg` runs again), mapped to the input they came from."""
    if output is not None:
        return {}
    outputs = targets(inputs, None, ext, None)
    given = {source.resolve(): source for source in inputs}
    return {
        given[target.resolve()]: source
        for source, target in zip(inputs, outputs, strict=True)
        if target.resolve() in given
    }


def _refuse_too_long(path: Path, output: Path | None) -> None:
    """A name the file system cannot create is refused now, not after the photo is done."""
    from gpen_cli.io.atomic import name_too_long

    reason = name_too_long(path)
    if reason is not None:
        where = "a shorter -o" if output is not None else "-o with a shorter name"
        raise GpenError(f"{reason}; choose {where}")


def _refuse_input_as_output(path: Path, inputs: list[Path]) -> None:
    """An output that would land on an input is refused now, not after the photo is done:
    inputs are never replaced, --overwrite or not."""
    for source in inputs:
        same = path.resolve() == source.resolve()
        if not same and path.exists() and source.exists():
            same = path.samefile(source)  # hard links, case-insensitive file systems
        if same:
            raise GpenError(
                f"the output {path} is the input {source}; inputs are never replaced, even "
                "with --overwrite: choose another output name or folder (without -o the "
                f"result goes beside the input as {source.stem}_gpen{path.suffix})"
            )


def planned_items(
    inputs: list[Path], outputs: list[Path], made_before: dict[Path, Path], overwrite: bool
) -> list[Task | ReportEntry]:
    """The engine's list: a Task for each input to restore, in the order given, and an entry
    for each one skipped (its output exists and --overwrite is off, or it is an earlier
    output). What a killed run left for an output is removed first, as `gpen batch` does."""
    from gpen_cli.batch.scan import Task
    from gpen_cli.core.confine import check_inside
    from gpen_cli.core.errors import OutputError
    from gpen_cli.pipeline.outputs import remove_stale_partials

    items: list[Task | ReportEntry] = []
    for source, target in zip(inputs, outputs, strict=True):
        try:  # a link at the output's name would make "exists" speak of another file
            check_inside(target, target.parent)
        except OutputError as exc:
            items.append(ReportEntry(str(source), None, "failed", error=message_of(exc)))
            continue
        remove_stale_partials(target)
        if os.path.lexists(target) and not overwrite:  # a dangling link is a name taken too
            message = f"{target} exists; pass --overwrite to replace it"
            items.append(skipped(source, message, "exists"))
        else:
            items.append(Task(source, target))
    for path, source in made_before.items():
        message = f"{path}: the output of {source} from an earlier run; not restored again"
        items.append(skipped(path, message, "earlier_output"))
    return items


def skipped(source: Path, message: str, reason: Reason) -> ReportEntry:
    return ReportEntry(
        input=str(source), output=None, status="skipped", error=message, reason=reason
    )


def in_given_order(
    entries: list[ReportEntry], items: list[Task | ReportEntry]
) -> list[ReportEntry]:
    """The engine's entries (sorted by path) in the order of the command line."""

    def input_of(item: Task | ReportEntry) -> str:
        return item.input if isinstance(item, ReportEntry) else str(item.source)

    position = {input_of(item): index for index, item in enumerate(items)}
    return sorted(entries, key=lambda entry: position[entry.input])


def describe_outputs(output: Path | None, outputs: list[Path]) -> str:
    """Where `gpen restore` writes: -o as given, the one output file, or the folder(s)."""
    if output is not None:
        return str(output)
    if len(outputs) == 1:
        return str(outputs[0])
    folders = {path.parent for path in outputs}
    if len(folders) == 1:
        return f"{folders.pop()}, as NAME_gpen.EXT"
    return "beside each input, as NAME_gpen.EXT" if outputs else "none (nothing to restore)"


_COLOURS = {"ok": "green", "no_face": "yellow", "skipped": "cyan", "failed": "red"}


def print_results(entries: list[ReportEntry], seconds: float) -> None:
    """A table of the photos when it fits the terminal unbroken, else a line per photo: a
    path is never folded inside a cell nor broken mid-word (it goes on a line of its own
    when the line would not fit, and the terminal wraps it, copied whole). Photos whose
    output exists are left out: `print_problems` counts them in one line."""
    shown = [e for e in entries if e.reason not in DONE_BEFORE]
    table = Table(title="gpen restore", show_edge=False)
    for column in ("input", "status", "faces", "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("output / error", overflow="fold")
    for e in shown:
        table.add_row(
            Text(Path(e.input).name),
            Text(e.status, style=_COLOURS[e.status]),
            str(e.faces.count),
            f"{e.seconds:.2f}",
            Text(in_flags(e.error or "") or e.output or ""),
        )
    unbounded = console.options.update(max_width=1 << 16)
    if shown and Measurement.get(console, unbounded, table).maximum <= console.width:
        console.print(table)
    else:
        for e in shown:
            print_result_line(e)
    counts = summarize(entries)
    console.print(
        f"{counts['ok']} ok, {counts['no_face']} no face, {counts['skipped']} skipped, "
        f"{counts['failed']} failed; {count(counts['faces'], 'face')} in {seconds:.1f} s"
    )
    scores = review_line(counts)
    if scores:
        console.print(scores, highlight=False)


def print_result_line(e: ReportEntry) -> None:
    """One photo's status, name, faces and time; then its output or error, on the same line
    when the whole fits the terminal, else on the next."""
    head = Text.assemble(
        (f"{e.status:<8}", _COLOURS[e.status]),
        f"{Path(e.input).name}  {count(e.faces.count, 'face')}  {e.seconds:.2f} s",
    )
    tail = f"-> {in_flags(e.error or '') or e.output or ''}"
    if head.cell_len + 2 + len(tail) <= console.width:
        console.print(Text.assemble(head, "  ", tail), soft_wrap=True, highlight=False)
        return
    console.print(head, soft_wrap=True, highlight=False)
    if e.error:  # words: wrapped between them
        print_wrapped("        " + tail, indent="           ")
    else:  # a path: whole, on a line of its own, indented as far as it still fits
        indent = " " * max(0, min(8, console.width - len(tail)))
        console.print(Text(indent + tail), soft_wrap=True, highlight=False)


RestoreOutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="Output file (one input) or folder. Default: beside each input, as NAME_gpen.EXT.",
    ),
]


def distinct(inputs: list[Path]) -> list[Path]:
    """The inputs, each file once: `a.jpg ./a.jpg $PWD/a.jpg` name one photo (restored once,
    reported under its first name), not three writers of one output."""
    seen: set[Path] = set()
    kept = []
    for source in inputs:
        try:
            key = source.resolve()
        except OSError:  # a name too long, a loop: left for the checks that name it
            key = source
        if key not in seen:
            seen.add(key)
            kept.append(source)
    return kept


def plan_run(
    inputs: list[Path], output: Path | None, ext: str, report: Path | None, overwrite: bool
) -> tuple[list[Path], list[Path], dict[Path, Path]]:
    """The inputs to restore, their outputs, and the inputs left out as earlier outputs;
    every folder written to is checked before any model loads."""
    from gpen_cli.core.preflight import check_report_path, check_writable_folder

    for source in inputs:  # a typo is a usage error, said before any model loads
        if not os.path.lexists(source):
            raise GpenError(f"{source}: no such file")
        if source.is_dir():
            raise GpenError(
                f"{source}: is a folder; restore a folder with gpen batch {source} -o OUTPUT_DIR"
            )
    inputs = distinct(inputs)
    # A rerun over the same files must not restore its own earlier outputs.
    given = list(inputs)
    made_before = earlier_outputs(inputs, output, ext)
    inputs = [source for source in inputs if source not in made_before]
    outputs = plan_outputs(inputs, output, ext)
    for folder in dict.fromkeys(path.parent for path in outputs):
        check_writable_folder(folder, "-o" if output is not None else "output folder")
    check_report_path(report, "restore", inputs=given, overwrite=overwrite)
    return inputs, outputs, made_before


@one_line_errors
@opt.pipeline_options()
def restore(
    inputs: Annotated[list[Path], typer.Argument(help="Photos to restore.", show_default=False)],
    output: RestoreOutputOption = None,
    save_faces: opt.SaveFacesOption = False,
    compare: opt.CompareOption = False,
    ext: opt.ExtOption = "same",
    report: opt.ReportOption = None,
    overwrite: opt.OverwriteOption = False,
    quiet: opt.QuietOption = False,
    *,
    config: RestoreConfig,
) -> None:
    """Restore the faces in each photo and save the result.

    $ gpen restore photo.jpg  (writes photo_gpen.jpg beside it)

    $ gpen restore old/*.png -o restored/ --compare

    $ gpen restore scan.tif --fidelity-weight 0.7 --mask rect

    The first Ctrl-C finishes the faces being restored, writes their
    photos and the report; a second one stops at once.

    Exit codes: 0 every input was restored or had no face; 1 some inputs
    failed; 2 usage or set-up error (bad option, missing weights), found
    before any output is written; 130 interrupted.
    """
    setup_logging(quiet)
    opt.check_ext(ext)
    inputs, outputs, made_before = plan_run(inputs, output, ext, report, overwrite)
    # The engines import torch: only once the command can run.
    from gpen_cli.batch.engines import DEFAULT_ENGINE, ENGINES, EngineSetup
    from gpen_cli.batch.job import GivenItems, PhotoJob
    from gpen_cli.pipeline.outputs import OutputOptions

    progress = photo_progress(quiet)
    choice = ENGINES[DEFAULT_ENGINE]
    with console.status(choice.getting_ready, spinner="dots") if not quiet else nullcontext():
        engine = choice.ready(config, EngineSetup(on_tile=TileProgress(progress)))

    items = planned_items(inputs, outputs, made_before, overwrite)
    written = OutputOptions(ext, overwrite, save_faces, compare, protected=tuple(inputs))
    outcome = run_items(engine, PhotoJob(GivenItems(items), written), choice.stopping, progress)
    raise conclude(
        outcome,
        report=report,
        extra={"command": "restore", "model": config.model, **upscale_settings(config)},
        quiet=quiet,
        summary=lambda: print_results(outcome.entries, outcome.seconds),
        outputs=describe_outputs(output, outputs),
        written=written,
    )


def run_items(engine: Engine, job: PhotoJob, stopping: str, progress: Progress) -> BatchOutcome:
    """The photos through the engine, a progress row each; Ctrl-C does what `stopping` says
    (the thread engine: finishes the faces being restored).
    The entries come back in the order the photos were given."""
    from gpen_cli.batch.signals import graceful_stop

    stop = threading.Event()
    items = list(job.source.items)
    with progress, graceful_stop(stop, *stop_handlers(stopping)):
        rows = PhotoRows(progress, len(items))
        outcome = engine.run(job, stop, rows)
    outcome.entries = in_given_order(outcome.entries, items)
    return outcome


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(restore)
