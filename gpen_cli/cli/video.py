"""`gpen video`: restore the faces of a film, with its sound, steady from frame to frame."""

from __future__ import annotations

import re
import shlex
import threading
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    console,
    fail,
    one_line_errors,
    rate_progress,
    say,
    setup_logging,
    update_rate,
)
from gpen_cli.cli.runs import stop_handlers
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, GpenError, message_of
from gpen_cli.core.words import count

if TYPE_CHECKING:
    from gpen_cli.batch.engine import Engine
    from gpen_cli.video import VideoJob, VideoOutcome

FILM = "Film"
# Settings of still photos only: a film is never aligned crops, nor upscaled here.
STILL_ONLY = ("aligned", "keep_resized", "upscale", "bg_upsampler", "tile", *opt.SCORING)
_TIME = re.compile(r"^(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d+)?)$")


def parse_time(text: str | None, option: str) -> Fraction | None:
    """Seconds ("90", "90.5") or [HH:]MM:SS[.ms] ("1:30", "0:01:30.5")."""
    if text is None:
        return None
    match = _TIME.match(text.strip())
    if match is None:
        raise GpenError(f"{option} {text!r}: give seconds (90.5) or [HH:]MM:SS (1:30.5)")
    hours, minutes, seconds = match.groups()
    return Fraction(seconds) + 60 * int(minutes or 0) + 3600 * int(hours or 0)


def _print_outcome(job: VideoJob, outcome: VideoOutcome) -> None:
    figures = (
        f"{count(outcome.frames, 'frame')}, {count(outcome.faces, 'face')} in "
        f"{outcome.seconds:.1f} s ({outcome.faces_per_second:.2f} faces/s)"
    )
    if outcome.segments_done:
        done = f"{outcome.segments_done} of {count(outcome.segments, 'segment')}"
        figures += f"; {done} {'was' if outcome.segments_done == 1 else 'were'} done already"
    if not outcome.interrupted:
        console.print(
            f"[green]restored:[/] {escape(str(job.output))}: {figures}",
            highlight=False,
            soft_wrap=True,  # a path is never broken across lines
        )
        return
    where = f" partial film: {outcome.written};" if outcome.written else ""
    again = (
        "run the same command again to restore the missing segments"
        if job.options.segment
        else "a new run starts over (--segment SECONDS makes long films resumable)"
    )
    say("[yellow]stopped:[/]", f"{figures};{where} {again}")


VideoOutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="Output film; its extension picks the container (.mp4, .mkv, .mov…). "
        "Default: NAME_gpen.EXT beside the input.",
    ),
]
SmoothOption = Annotated[
    bool,
    typer.Option(
        "--smooth/--no-smooth",
        help="Smooth each tracked face's landmarks over time, so the face holds steady.",
        rich_help_panel=FILM,
    ),
]
StartOption = Annotated[
    str | None,
    typer.Option(
        "--start",
        show_default=False,
        help="Begin here: seconds or [HH:]MM:SS[.ms].",
        rich_help_panel=FILM,
    ),
]
DurationOption = Annotated[
    str | None,
    typer.Option(
        "--duration",
        show_default=False,
        help="Restore this long: seconds or [HH:]MM:SS[.ms]. Default: to the end.",
        rich_help_panel=FILM,
    ),
]
CodecOption = Annotated[
    str | None,
    typer.Option(
        "--codec",
        show_default=False,
        help="Video encoder (libx264, libx265, libvpx-vp9, ffv1…). Default: the input's "
        "codec when it can be encoded here, else libx264.",
        rich_help_panel=FILM,
    ),
]
CrfOption = Annotated[
    int | None,
    typer.Option(
        "--crf",
        show_default=False,
        help="Quality of x264, x265, VP9 and AV1, 0 to 63: lower is better and bigger. "
        "Default: 18.",
        rich_help_panel=FILM,
    ),
]
SegmentOption = Annotated[
    float | None,
    typer.Option(
        "--segment",
        show_default=False,
        help="Restore in independent segments of this many seconds, kept in "
        "OUTPUT.segments/ and joined at the end; a rerun redoes only missing ones.",
        rich_help_panel=FILM,
    ),
]


def plan_window(start: str | None, duration: str | None):
    """The part of the film to restore, from --start and --duration."""
    from gpen_cli.video import Window

    begin = parse_time(start, "--start") or Fraction(0)
    length = parse_time(duration, "--duration")
    if length is not None and length <= 0:
        raise GpenError(f"--duration must be more than 0, got {duration}")
    return Window(begin, None if length is None else begin + length)


def _plan(source: Path, output: Path, options, fingerprint: dict) -> VideoJob:
    """The job, once its input and output are checked; a photo is pointed to `gpen restore`."""
    from gpen_cli.video import plan_video
    from gpen_cli.video.media import StillImageError

    try:
        return plan_video(source, output, options, fingerprint)
    except StillImageError as exc:
        command = f"gpen restore {shlex.quote(str(source))}"
        raise GpenError(f"{exc}; restore it with: {command}") from None


def run_job(job: VideoJob, engine: Engine, quiet: bool) -> VideoOutcome:
    """Restore the film with a progress bar; Ctrl-C finishes the frames in flight."""
    from gpen_cli.batch.signals import graceful_stop

    stop = threading.Event()
    progress = rate_progress("frames", quiet)

    def on_frame(frame) -> None:
        progress.update(0, advance=1, faces=progress.tasks[0].fields["faces"] + frame.faces)
        update_rate(progress)

    on_first, on_second = stop_handlers("finishing the frames in flight", " (no partial film kept)")
    try:
        with progress, graceful_stop(stop, on_first, on_second):
            progress.add_task("Restoring", total=job.frames_to_do(), faces=0, rate=0.0)
            return engine.run(job, stop, on_frame)
    except GpenError as exc:
        raise fail(message_of(exc), EXIT_SOME_FAILED) from None


@one_line_errors
@opt.pipeline_options(leave_out=STILL_ONLY)
def video(
    source: Annotated[Path, typer.Argument(help="Film to restore.", show_default=False)],
    output: VideoOutputOption = None,
    smooth: SmoothOption = True,
    start: StartOption = None,
    duration: DurationOption = None,
    codec: CodecOption = None,
    crf: CrfOption = None,
    segment: SegmentOption = None,
    overwrite: opt.OverwriteOption = False,
    quiet: opt.QuietOption = False,
    *,
    config: RestoreConfig,
) -> None:
    """Restore the faces of a film, frame by frame, as a stream.

    $ gpen video clip.mp4 -o clip_gpen.mp4

    $ gpen video film.mkv -o part.mkv --start 1:30 --duration 20

    $ gpen video film.mp4 -o film_gpen.mp4 --segment 60

    Frame rate, frame count, duration, size and rotation are kept;
    audio and subtitles are copied unchanged; frames without faces
    pass through. The first Ctrl-C finishes the frames in flight and
    keeps them as NAME.partial.EXT; a second one stops at once.

    Exit codes: 0 done; 1 the film could not be read or written to
    the end; 2 usage or set-up error, found before any output is
    written; 130 interrupted.
    """
    try:
        import av  # noqa: F401
    except ImportError:
        raise fail("gpen video needs PyAV (Python 3.11+): pip install 'gpen-cli[video]'") from None
    from gpen_cli.batch.engines import DEFAULT_ENGINE, ENGINES, EngineSetup
    from gpen_cli.video import VideoOptions

    setup_logging(quiet)
    window = plan_window(start, duration)
    if crf is not None and not 0 <= crf <= 63:
        raise GpenError(f"--crf must be 0 to 63, got {crf}")
    output = output or source.with_name(f"{source.stem}_gpen{source.suffix}")
    options = VideoOptions(
        window=window, codec=codec, crf=crf, segment=segment, smooth=smooth, overwrite=overwrite
    )
    fingerprint = {k: v for k, v in config.describe().items() if k not in ("device", "weights_dir")}
    job = _plan(source, output, options, fingerprint)
    choice = ENGINES[DEFAULT_ENGINE]
    with console.status(choice.getting_ready, spinner="dots") if not quiet else nullcontext():
        engine = choice.ready(config, EngineSetup())
    outcome = run_job(job, engine, quiet)
    if not quiet or outcome.interrupted:
        _print_outcome(job, outcome)
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.cut_short:  # the warning said where the frames ended
        raise typer.Exit(EXIT_SOME_FAILED)


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(video)
