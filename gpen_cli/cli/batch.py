"""`gpen batch`: restore every photo of a folder tree into a mirror tree."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext
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
    console,
    err_console,
    fail,
    one_line_errors,
    say,
    setup_logging,
)
from gpen_cli.cli.runs import conclude, stop_handlers
from gpen_cli.config import RestoreConfig
from gpen_cli.report import summarize, upscale_settings

if TYPE_CHECKING:
    from gpen_cli.batch import BatchLayout, BatchOptions, BatchOutcome
    from gpen_cli.batch.runner import PhotoProgress

    OnProgress = Callable[[PhotoProgress], None]

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
    address: str | None,
    workers: int | None,
    model_actors: int,
    gpus_per_worker: float,
    batch_size: int | None,
):
    """Where the Ray engine runs: a local Ray gets --workers CPUs (default: all) and the
    torch threads the thread engine would use here, so both give the same bytes."""
    import torch

    from gpen_cli.batch.ray_engine import RayOptions

    return RayOptions(
        address=address,
        cpus=workers,
        model_actors=model_actors,
        gpus_per_actor=gpus_per_worker,
        photos_per_call=max(8, batch_size or 0),
        torch_threads=None if address else torch.get_num_threads(),
    )


def _run_with_progress(
    run: Callable[[threading.Event, OnProgress], BatchOutcome],
    stopping: str,
    layout: BatchLayout,
    options: BatchOptions,
    quiet: bool,
) -> BatchOutcome:
    """`run(stop, on_progress)` under the progress bar, with Ctrl-C setting `stop`."""
    from gpen_cli.batch.signals import graceful_stop

    stop = threading.Event()
    progress = _progress(quiet)
    task = progress.add_task("Restoring", total=None, faces=0, rate=0.0)

    def on_progress(event: PhotoProgress) -> None:
        if event.stage != "done":
            return
        elapsed = progress.tasks[0].elapsed or 0.0
        rate = event.faces_done / elapsed if elapsed > 0 else 0.0
        progress.update(task, completed=event.photos_done, faces=event.faces_done, rate=rate)

    with progress, graceful_stop(stop, *stop_handlers(stopping)):
        _count_in_background(progress, task, layout, options)
        return run(stop, on_progress)


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


@one_line_errors
@opt.pipeline_options()
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
    *,
    config: RestoreConfig,
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
    from gpen_cli.batch.runner import default_workers, progress_from_entries
    from gpen_cli.preflight import check_report_path, check_writable_folder
    from gpen_cli.restorer import FaceRestorer

    setup_logging(quiet)
    if engine not in ENGINES:
        raise fail(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "thread" and (address or gpus_per_worker or model_actors != 1):
        raise fail("--address, --gpus-per-worker and --model-actors need --engine ray")
    opt.check_ext(ext)
    layout = plan_layout(input_dir, output, report)
    check_writable_folder(output, "-o")
    check_report_path(report)
    if layout.excluded and not quiet:
        say(
            "note:", f"the output folder {output} is inside {input_dir}: it is left out of the scan"
        )
    options = BatchOptions(
        ext=ext,
        recursive=recursive,
        pattern=pattern,
        overwrite=overwrite,
        aligned=config.aligned,
        save_faces=save_faces,
        compare=compare,
        workers=workers or default_workers(),
    )
    # Everything that can be missing (weights, device) is found before any file is touched.
    try:
        with console.status("Loading models…", spinner="dots") if not quiet else nullcontext():
            restorer = FaceRestorer(config=config)
    except ValueError as exc:  # e.g. --device cuda on a machine without CUDA
        raise fail(str(exc)) from None

    def run(stop: threading.Event, on_progress: OnProgress) -> BatchOutcome:
        if engine == "thread":
            return restore_folder(restorer, layout, options, stop=stop, on_progress=on_progress)
        from gpen_cli.batch.ray_engine import restore_folder_ray

        ray_options = _ray_options(
            address, workers, model_actors, gpus_per_worker, config.batch_size
        )
        on_entry = progress_from_entries(on_progress, config.aligned)
        return restore_folder_ray(
            config, layout, options, ray_options, stop=stop, on_entry=on_entry
        )

    stopping = "finishing the photos in flight" if engine == "thread" else "cancelling the Ray job"
    outcome = _run_with_progress(run, stopping, layout, options, quiet)
    raise conclude(
        outcome,
        report=report,
        extra={
            "command": "batch",
            "model": config.model,
            **upscale_settings(restorer),
            "input_dir": str(input_dir),
            "output_dir": str(output),
        },
        quiet=quiet,
        summary=lambda: print_summary(outcome),
        outputs=str(output),
        overwrite=overwrite,
    )


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(batch)
