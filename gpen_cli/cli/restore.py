"""`gpen restore`: restore the faces of one or more photos."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    WeightsDirOption,
    console,
    err_console,
    one_line_errors,
    say,
    setup_logging,
)
from gpen_cli.cli.tiles import TileProgress
from gpen_cli.config import LandmarkSource, MaskKind
from gpen_cli.errors import EXIT_OK, EXIT_SOME_FAILED, GpenError, OutputError
from gpen_cli.report import (
    FacesSummary,
    ReportEntry,
    naming,
    summarize,
    upscale_settings,
    write_report,
)


def restore_file(
    restorer,
    settings: opt.RestoreSettings,
    source: Path,
    output: Path,
    *,
    overwrite: bool,
    protected: list[Path],
    save_faces: bool,
    compare: bool,
) -> ReportEntry:
    """Restore one photo and write its outputs; every failure becomes a report entry."""
    from gpen_cli.outputs import remove_stale_partials, write_outputs
    from gpen_cli.stages.load import load_image

    started = time.perf_counter()
    entry = ReportEntry(input=str(source), output=None, status="failed")
    try:
        remove_stale_partials(output)  # what a killed run left, as `gpen batch` does
        if output.exists() and not overwrite:
            entry.status, entry.error = (
                "skipped",
                f"{output} exists; pass --overwrite to replace it",
            )
            return entry
        loaded = load_image(source)
        entry.note = loaded.frames_note
        result = restorer.restore(loaded.pixels)
        entry.faces = FacesSummary(
            count=len(result.faces),
            boxes=[face.box for face in result.faces],
            scores=[face.score for face in result.faces],
        )
        write_outputs(
            loaded,
            result,
            output,
            overwrite=overwrite,
            protected=protected,
            save_faces=save_faces,
            compare=compare,
            aligned=settings.aligned,
        )
        entry.output = str(output)
        entry.output_size = [int(result.image.shape[1]), int(result.image.shape[0])]
        entry.status = "ok" if result.faces or settings.aligned else "no_face"
    except GpenError as exc:
        entry.error = naming(source, str(exc))
    except Exception as exc:  # one bad photo must not take the others down
        entry.error = f"{source}: unexpected {type(exc).__name__}: {exc}"
    finally:
        entry.seconds = round(time.perf_counter() - started, 3)
    return entry


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


def print_results(entries: list[ReportEntry], seconds: float) -> None:
    table = Table(title="gpen restore", show_edge=False)
    for column in ("input", "status", "faces", "seconds", "output / error"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "no_face": "yellow", "skipped": "cyan", "failed": "red"}
    for e in entries:
        table.add_row(
            Text(Path(e.input).name),
            f"[{colours[e.status]}]{e.status}[/]",
            str(e.faces.count),
            f"{e.seconds:.2f}",
            Text(e.error or e.output or ""),
        )
    console.print(table)
    counts = summarize(entries)
    console.print(
        f"{counts['ok']} ok, {counts['no_face']} no face, {counts['skipped']} skipped, "
        f"{counts['failed']} failed; {counts['faces']} faces in {seconds:.1f} s"
    )


@one_line_errors
def restore(
    inputs: Annotated[list[Path], typer.Argument(help="Photos to restore.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Output file (one input) or folder. Default: beside each input, as NAME_gpen.EXT.",
        ),
    ] = None,
    model: opt.ModelOption = opt.DEFAULT_MODEL,
    weights_dir: WeightsDirOption = None,
    detector: opt.DetectorOption = opt.DEFAULT_DETECTOR,
    device: opt.DeviceOption = "auto",
    batch_size: opt.BatchSizeOption = None,
    fidelity_weight: opt.FidelityOption = 1.0,
    aligned: opt.AlignedOption = False,
    short_edge: opt.ShortEdgeOption = None,
    upscale: opt.UpscaleOption = 1,
    bg_upsampler: opt.BgUpsamplerOption = None,
    tile: opt.TileOption = None,
    keep_resized: opt.KeepResizedOption = False,
    clahe: opt.ClaheOption = False,
    only_center_face: opt.CenterOption = False,
    min_face_size: opt.MinFaceOption = 0.0,
    score_threshold: opt.ThresholdOption = 0.9,
    drop_nested: opt.DropNestedOption = False,
    landmarks: opt.LandmarksOption = LandmarkSource.DETECTOR,
    mask: opt.MaskOption = MaskKind.PARSING,
    half: opt.HalfOption = False,
    compile_model: opt.CompileOption = False,
    exact: opt.ExactOption = False,
    save_faces: opt.SaveFacesOption = False,
    compare: opt.CompareOption = False,
    ext: opt.ExtOption = "same",
    report: opt.ReportOption = None,
    overwrite: opt.OverwriteOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore the faces in each photo and save the result.

    $ gpen restore photo.jpg  (writes photo_gpen.jpg beside it)

    $ gpen restore old/*.png -o restored/ --compare

    $ gpen restore scan.tif --fidelity-weight 0.7 --mask rect

    Exit codes: 0 every input was restored or had no face; 1 some inputs failed;
    2 usage or set-up error (bad option, missing weights), found before any output is written.
    """
    from gpen_cli.preflight import check_report_path, check_writable_folder

    setup_logging(quiet)
    opt.check_ext(ext)
    opt.check_device(device)
    settings = opt.RestoreSettings.from_arguments(locals())
    # A rerun over the same files must not restore its own earlier outputs.
    made_before = earlier_outputs(inputs, output, ext)
    inputs = [source for source in inputs if source not in made_before]
    outputs = plan_outputs(inputs, output, ext)
    for folder in dict.fromkeys(path.parent for path in outputs):
        check_writable_folder(folder, "-o" if output is not None else "output folder")
    check_report_path(report)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )
    with console.status("Loading models…", spinner="dots") if not quiet else nullcontext():
        restorer = settings.build_restorer(on_tile=TileProgress(progress))
        restorer.paste_in_place = not compare  # --compare shows the input as it was

    started = time.perf_counter()
    entries: list[ReportEntry] = []
    with progress:
        task = progress.add_task("Restoring", total=len(inputs), visible=len(inputs) >= 2)
        for source, target in zip(inputs, outputs, strict=True):
            progress.update(task, description=f"Restoring {escape(source.name)}")
            entries.append(
                restore_file(
                    restorer,
                    settings,
                    source,
                    target,
                    overwrite=overwrite,
                    protected=inputs,
                    save_faces=save_faces,
                    compare=compare,
                )
            )
            progress.advance(task)
    elapsed = time.perf_counter() - started
    entries += [
        ReportEntry(
            input=str(path),
            output=None,
            status="skipped",
            error=f"{path}: the output of {source} from an earlier run; not restored again",
        )
        for path, source in made_before.items()
    ]

    report_error = None
    if report is not None:
        try:
            write_report(
                report,
                entries,
                {
                    "command": "restore",
                    "model": model,
                    **upscale_settings(restorer),
                    "seconds": round(elapsed, 3),
                },
            )
        except OutputError as exc:  # e.g. the disk filled up: the outputs are written
            report_error = str(exc)
    for entry in entries:
        if entry.status == "failed":
            say("[bold red]error:[/]", entry.error or "")
        elif entry.status == "skipped" and not quiet:
            say("[cyan]skipped:[/]", entry.error or "")
        if entry.note and not quiet:
            say("[yellow]note:[/]", entry.note)
    if not quiet:
        print_results(entries, elapsed)
    if report_error:
        say("[bold red]error:[/]", report_error)
    failed = report_error or any(entry.status == "failed" for entry in entries)
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(restore)
