"""`gpen batch`: restore every photo of a folder tree into a mirror tree."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    WeightsDirOption,
    console,
    err_console,
    fail,
    one_line_errors,
    say,
    setup_logging,
)
from gpen_cli.config import LandmarkSource, MaskKind
from gpen_cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, OutputError
from gpen_cli.report import ReportEntry, summarize, upscale_settings, write_report

if TYPE_CHECKING:
    from gpen_cli.batch import BatchLayout, BatchOptions, BatchOutcome

SCAN = "Folder scan"
RAY = "Ray engine"
ENGINES = ("thread", "ray")


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images, {task.fields[faces]} faces, {task.fields[rate]:.2f} faces/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )


def _count_in_background(
    progress: Progress, task: int, layout: BatchLayout, options: BatchOptions
) -> None:
    """Give the progress bar its total (and so an ETA) without delaying the first photo."""
    from gpen_cli.batch.scan import count_items

    def count() -> None:
        total = count_items(layout, recursive=options.recursive, pattern=options.pattern)
        progress.update(task, total=total)

    threading.Thread(target=count, name="gpen-batch-count", daemon=True).start()


def _ray_options(
    address: str | None, workers: int | None, model_actors: int, gpus_per_worker: float
):
    """Where the Ray engine runs: a local Ray gets --workers CPUs (default: all). Every model
    actor, here or on a cluster, uses the torch threads the thread engine would use here: the
    same bytes as the thread engine, whichever node restored a photo."""
    import torch

    from gpen_cli.batch.ray_engine import RayOptions

    return RayOptions(
        address=address,
        cpus=workers,
        model_actors=model_actors,
        gpus_per_actor=gpus_per_worker,
        torch_threads=torch.get_num_threads(),
    )


def print_summary(outcome: BatchOutcome) -> None:
    counts = summarize(outcome.entries)
    title = "gpen batch" + (" (interrupted)" if outcome.interrupted else "")
    table = Table(title=title, show_edge=False)
    for column in ("ok", "no_face", "skipped", "failed", "faces", "time", "faces/s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"[green]{counts['ok']}[/]",
        f"[yellow]{counts['no_face']}[/]",
        f"[cyan]{counts['skipped']}[/]",
        f"[red]{counts['failed']}[/]",
        str(outcome.faces),
        f"{outcome.seconds:.1f} s",
        f"{outcome.faces_per_second:.2f}",
    )
    console.print(table)


def print_problems(entries: list[ReportEntry], quiet: bool) -> None:
    """Failures always, one line each; skips unless --quiet, those already done as a count."""
    from gpen_cli.batch.scan import ALREADY_DONE

    done = 0
    for entry in entries:
        if entry.status == "failed":
            say("[bold red]error:[/]", entry.error or "")
        elif entry.status == "skipped" and entry.error == ALREADY_DONE:
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


@one_line_errors
def batch(
    input_dir: Annotated[
        Path, typer.Argument(help="Folder of photos to restore.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help="Output folder: the input tree is mirrored there.",
        ),
    ],
    model: opt.ModelOption = opt.DEFAULT_MODEL,
    weights_dir: WeightsDirOption = None,
    detector: opt.DetectorOption = opt.DEFAULT_DETECTOR,
    device: opt.DeviceOption = "auto",
    batch_size: opt.BatchSizeOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            show_default=False,
            help="Threads decoding, detecting and writing beside the generator "
            "(default: min(4, CPU count)); with --engine ray, the CPUs of the local Ray "
            "(default: all).",
            rich_help_panel=opt.SPEED,
        ),
    ] = None,
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
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive/--no-recursive",
            help="Also restore the photos of sub-folders.",
            rich_help_panel=SCAN,
        ),
    ] = True,
    pattern: Annotated[
        str | None,
        typer.Option(
            "--glob",
            show_default=False,
            help="Only files whose name matches (e.g. '*.jpg'; with a '/', the path relative "
            "to INPUT_DIR). Case-insensitive.",
            rich_help_panel=SCAN,
        ),
    ] = None,
    save_faces: opt.SaveFacesOption = False,
    compare: opt.CompareOption = False,
    ext: opt.ExtOption = "same",
    report: opt.ReportOption = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Redo every photo, replacing outputs that exist (default: skip them as done).",
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
    quiet: opt.QuietOption = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="thread: this process's threads; ray: Ray Data, on this machine or a cluster "
            "(pip install 'gpen-cli[ray]').",
            rich_help_panel=RAY,
        ),
    ] = "thread",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            show_default=False,
            help="Ray cluster to run on ('auto': the one `ray start` began here). "
            "Default: start a local Ray with --workers CPUs.",
            rich_help_panel=RAY,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float,
        typer.Option(
            "--gpus-per-worker",
            min=0.0,
            help="GPUs each model actor claims (0.5: two actors share a GPU); 0: CPU actors.",
            rich_help_panel=RAY,
        ),
    ] = 0.0,
    model_actors: Annotated[
        int,
        typer.Option(
            "--model-actors",
            min=1,
            help="Model actors, each holding its own copy of the models.",
            rich_help_panel=RAY,
        ),
    ] = 1,
) -> None:
    """Restore every photo of a folder tree into OUTPUT, mirroring its layout.

    $ gpen batch ./archive -o ./restored --report report.json

    $ gpen batch ./scans -o ./out --glob "*.tif" --batch-size 8 --half

    Outputs are written atomically; run the same command again after a stop and it skips
    what is done. The first Ctrl-C finishes the photos in flight and writes the report,
    a second one stops at once.

    Exit codes: 0 nothing failed; 1 some inputs failed; 2 usage or set-up error (bad option,
    missing weights), found before any output is written; 130 interrupted.
    """
    # The pipeline imports torch: only when the command runs, so `gpen --help` stays quick.
    from gpen_cli.batch import BatchOptions, plan_layout, restore_folder
    from gpen_cli.batch.runner import default_workers
    from gpen_cli.batch.signals import graceful_stop
    from gpen_cli.batch.steps import faces_restored
    from gpen_cli.preflight import check_report_path, check_writable_folder

    setup_logging(quiet)
    if engine not in ENGINES:
        raise fail(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "thread" and (address or gpus_per_worker or model_actors != 1):
        raise fail("--address, --gpus-per-worker and --model-actors need --engine ray")
    opt.check_ext(ext)
    opt.check_device(device)
    layout = plan_layout(input_dir, output, report)
    check_writable_folder(output, "-o")
    check_report_path(report)
    if layout.excluded and not quiet:
        say(
            "note:", f"the output folder {output} is inside {input_dir}: it is left out of the scan"
        )
    settings = opt.RestoreSettings.from_arguments(locals())
    options = BatchOptions(
        ext=ext,
        recursive=recursive,
        pattern=pattern,
        overwrite=overwrite,
        aligned=aligned,
        save_faces=save_faces,
        compare=compare,
        workers=workers or default_workers(),
    )
    # Everything that can be missing (weights, device) is found before any file is touched.
    try:
        if quiet:
            restorer = settings.build_restorer()
        else:
            with console.status("Loading models…", spinner="dots"):
                restorer = settings.build_restorer()
    except ValueError as exc:  # e.g. --device cuda on a machine without CUDA
        raise fail(str(exc)) from None

    stop = threading.Event()
    progress = _progress(quiet)

    def on_entry(entry: ReportEntry) -> None:
        fields = progress.tasks[0].fields
        fields["faces"] += faces_restored(entry, aligned)
        elapsed = progress.tasks[0].elapsed or 0.0
        rate = fields["faces"] / elapsed if elapsed > 0 else 0.0
        progress.update(task, advance=1, rate=rate)

    def on_first() -> None:
        err_console.print(
            "[yellow]stopping:[/] "
            + (
                "finishing the photos in flight; press Ctrl-C again to stop now"
                if engine == "thread"
                else "cancelling the Ray job; press Ctrl-C again to stop now"
            ),
            highlight=False,
        )

    def on_second() -> None:
        err_console.show_cursor(True)
        err_console.print("\n[red]stopped[/]", highlight=False)

    def run() -> BatchOutcome:
        if engine == "thread":
            return restore_folder(restorer, layout, options, stop=stop, on_entry=on_entry)
        from gpen_cli.batch.ray_engine import restore_folder_ray

        ray_options = _ray_options(address, workers, model_actors, gpus_per_worker)
        return restore_folder_ray(
            settings, layout, options, ray_options, stop=stop, on_entry=on_entry
        )

    with progress, graceful_stop(stop, on_first, on_second):
        task = progress.add_task("Restoring", total=None, faces=0, rate=0.0)
        _count_in_background(progress, task, layout, options)
        outcome = run()

    report_error = None
    if report is not None:
        try:
            write_report(
                report,
                outcome.entries,
                {
                    "command": "batch",
                    "model": model,
                    **upscale_settings(restorer),
                    "input_dir": str(input_dir),
                    "output_dir": str(output),
                    "interrupted": outcome.interrupted,
                    "seconds": round(outcome.seconds, 3),
                    "faces_restored": outcome.faces,
                    "faces_per_second": round(outcome.faces_per_second, 3),
                },
            )
        except OutputError as exc:  # e.g. the disk filled up: the outputs are written
            report_error = str(exc)
    print_problems(outcome.entries, quiet)
    if not quiet:
        print_summary(outcome)
    if report_error:
        say("[bold red]error:[/]", report_error)
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    failed = report_error or any(entry.status == "failed" for entry in outcome.entries)
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(batch)
