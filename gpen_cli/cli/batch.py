"""`gpen batch`: restore every photo of a folder tree into a mirror tree."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    console,
    one_line_errors,
    rate_progress,
    say,
    setup_logging,
)
from gpen_cli.cli.eta import EtaColumn, FaceEstimate
from gpen_cli.cli.review import PAGE_NAME, ReviewPageOption, check_batch_page, page_after_batch
from gpen_cli.cli.runs import conclude, stop_handlers
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.pipeline.report import review_line, summarize, upscale_settings, with_earlier_results

if TYPE_CHECKING:
    from gpen_cli.batch import BatchLayout, BatchOutcome
    from gpen_cli.batch.engine import Engine, PhotoProgress
    from gpen_cli.batch.job import PhotoJob
    from gpen_cli.pipeline.outputs import OutputOptions

SCAN = "Folder scan"
RAY = "Ray engine"


def _count_in_background(
    progress: Progress, task: int, estimate: FaceEstimate, job: PhotoJob
) -> None:
    """Give the progress bar its total (and so an ETA) without delaying the first photo:
    the photos to restore, neither those done already nor files that are not images."""

    def count() -> None:
        try:
            total = job.source.count(job.output)
        except Exception:  # a bar without a total (no ETA) is no reason to stop, nor a trace
            logging.getLogger("gpen_cli.batch").debug("counting the photos failed", exc_info=True)
            return
        estimate.total = total
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


def _run_with_progress(engine: Engine, job: PhotoJob, stopping: str, quiet: bool) -> BatchOutcome:
    """The job on `engine` under the progress bar, with Ctrl-C setting `stop`."""
    from gpen_cli.batch.signals import graceful_stop

    stop = threading.Event()
    estimate = FaceEstimate()
    progress = rate_progress("images", quiet, eta=EtaColumn(estimate))
    task = progress.add_task("Restoring", total=None, faces=0, rate=0.0)

    def on_progress(event: PhotoProgress) -> None:
        estimate(event)
        progress.update(
            task,
            completed=estimate.photos_done,
            faces=estimate.faces_written,
            rate=estimate.faces_per_second(),
        )

    with progress, graceful_stop(stop, *stop_handlers(stopping)):
        _count_in_background(progress, task, estimate, job)
        return engine.run(job, stop, on_progress)


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
    scores = review_line(counts)
    if scores:
        console.print(scores, highlight=False)


BatchOutputOption = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="Output folder: the input tree is mirrored there.",
    ),
]
WorkersOption = Annotated[
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
]
RecursiveOption = Annotated[
    bool,
    typer.Option(
        "--recursive/--no-recursive",
        help="Also restore the photos of sub-folders.",
        rich_help_panel=SCAN,
    ),
]
GlobOption = Annotated[
    str | None,
    typer.Option(
        "--glob",
        show_default=False,
        help="Only files whose name matches (e.g. '*.jpg'; with a '/', the path relative "
        "to INPUT_DIR). Case-insensitive.",
        rich_help_panel=SCAN,
    ),
]
RedoOption = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Redo every photo, replacing outputs that exist (default: skip them as done).",
        rich_help_panel=opt.OUTPUT,
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="thread: this process's threads; ray: Ray Data, on this machine or a cluster "
        "(pip install 'gpen-cli\\[ray]').",
        rich_help_panel=RAY,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        show_default=False,
        help="Ray cluster to run on ('auto': the one `ray start` began here). "
        "Default: start a local Ray with --workers CPUs.",
        rich_help_panel=RAY,
    ),
]
GpusOption = Annotated[
    float,
    typer.Option(
        "--gpus-per-worker",
        help="GPUs each model actor claims (0.5: two actors share a GPU); 0: CPU actors.",
        rich_help_panel=RAY,
    ),
]
ActorsOption = Annotated[
    int,
    typer.Option(
        "--model-actors",
        help="Model actors, each holding its own copy of the models.",
        rich_help_panel=RAY,
    ),
]


def check_engine(engine: str, address: str | None, gpus: float, actors: int) -> None:
    """An engine of the table; the Ray options make sense only with the Ray engine."""
    from gpen_cli.batch.engines import ENGINES

    if engine not in ENGINES:
        raise GpenError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if gpus < 0 or actors < 1:
        raise GpenError("--gpus-per-worker must be 0 or more, --model-actors 1 or more")
    if engine == "thread" and (address or gpus or actors != 1):
        raise GpenError("--address, --gpus-per-worker and --model-actors need --engine ray")


def plan_folders(
    input_dir: Path, output: Path, report: Path | None, quiet: bool, overwrite: bool
) -> BatchLayout:
    """Which folders are read and written; refused before any model loads when unusable."""
    from gpen_cli.batch import plan_layout
    from gpen_cli.core.preflight import check_report_path, check_writable_folder

    layout = plan_layout(input_dir, output, report)
    check_writable_folder(output, "-o")
    check_report_path(report, "batch", overwrite=overwrite)
    if layout.excluded and not quiet:
        say(
            "note:", f"the output folder {output} is inside {input_dir}: it is left out of the scan"
        )
    return layout


@one_line_errors
@opt.pipeline_options()
def batch(
    input_dir: Annotated[
        Path, typer.Argument(help="Folder of photos to restore.", show_default=False)
    ],
    output: BatchOutputOption,
    workers: WorkersOption = None,
    recursive: RecursiveOption = True,
    pattern: GlobOption = None,
    save_faces: opt.SaveFacesOption = False,
    compare: opt.CompareOption = False,
    ext: opt.ExtOption = "same",
    report: opt.ReportOption = None,
    review_page: ReviewPageOption = False,
    overwrite: RedoOption = False,
    quiet: opt.QuietOption = False,
    engine: EngineOption = "thread",
    address: AddressOption = None,
    gpus_per_worker: GpusOption = 0.0,
    model_actors: ActorsOption = 1,
    *,
    config: RestoreConfig,
) -> None:
    """Restore every photo of a folder tree into OUTPUT, mirroring its layout.

    $ gpen batch ./archive -o ./restored --report report.json

    $ gpen batch ./scans -o ./out --glob "*.tif" --batch-size 8 --half

    Outputs are written atomically; run the same command again after a
    stop and it skips what is done (its report still describes the whole
    job). The first Ctrl-C finishes the faces being restored, writes
    their photos and the report, and leaves the rest for that rerun; a
    second one stops at once.

    Exit codes: 0 nothing failed; 1 some inputs failed; 2 usage or set-up
    error (bad option, missing weights), found before any output is
    written; 130 interrupted.
    """
    # The engine imports torch: only when the command runs, so `gpen --help` stays quick.
    from gpen_cli.batch.engines import ENGINES, EngineSetup
    from gpen_cli.batch.job import FolderScan, PhotoJob
    from gpen_cli.batch.runner import default_workers
    from gpen_cli.pipeline.outputs import OutputOptions

    setup_logging(quiet)
    check_engine(engine, address, gpus_per_worker, model_actors)
    workers = _capped_workers(workers)
    opt.check_ext(ext)
    layout = plan_folders(input_dir, output, report, quiet, overwrite)
    page = output / PAGE_NAME if review_page else None
    check_batch_page(page)
    written = OutputOptions(ext, overwrite, save_faces, compare)
    job = PhotoJob(FolderScan(layout, recursive, pattern), written)
    ray = _ray_options(address, workers, model_actors, gpus_per_worker)
    setup = EngineSetup(workers or default_workers(), ray=ray)
    # Everything that can be missing (weights, device) is found before any file is touched.
    choice = ENGINES[engine]
    with console.status(choice.getting_ready, spinner="dots") if not quiet else nullcontext():
        ready = choice.ready(config, setup)
    outcome = _run_with_progress(ready, job, choice.stopping, quiet)
    done = conclude_batch(outcome, config, input_dir, output, report, quiet, written)
    if page is not None and not outcome.interrupted:  # a stopped run is left to `gpen review`
        title = f"Report: {report}" if report else f"gpen batch {input_dir} -o {output}"
        done = page_after_batch(outcome.entries, page, title, quiet, done)
    raise done


def _capped_workers(workers: int | None) -> int | None:
    """--workers capped by memory, said in one line when it is (None stays None: the default)."""
    from gpen_cli.core.memory import cap_workers

    if workers is None:
        return None
    workers, line = cap_workers(workers)
    if line:
        logging.getLogger("gpen_cli.batch").warning("%s", line)
    return workers


def conclude_batch(
    outcome: BatchOutcome,
    config: RestoreConfig,
    input_dir: Path,
    output: Path,
    report: Path | None,
    quiet: bool,
    written: OutputOptions,
) -> typer.Exit:
    """Report the whole job (a resumed run keeps what the earlier one said of the photos it
    did), say how it went; the Exit to raise."""
    outcome.entries = with_earlier_results(report, outcome.entries)
    folders = {"input_dir": str(input_dir), "output_dir": str(output)}
    return conclude(
        outcome,
        report=report,
        extra={"command": "batch", "model": config.model, **upscale_settings(config)} | folders,
        quiet=quiet,
        summary=lambda: print_summary(outcome),
        outputs=str(output),
        written=written,
    )


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(batch)
