"""`gpen video` without the CLI: checks, temporary files, stopping, segments.

The film is written to a hidden temporary file beside the output and renamed at the end.
A stop (Ctrl-C) lets the frames in flight through, closes the file so it plays, and renames
it `NAME.partial.EXT`. With segments, each stretch of `segment` seconds is such a film of
its own in `OUTPUT.segments/`; a rerun restores only the missing ones, and when all are
there they are joined without re-encoding into the output.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from gpen_cli.core.confine import check_inside
from gpen_cli.core.errors import GpenError, InputError, OutputError, Phrase
from gpen_cli.io.atomic import name_too_long, partial_key
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.video.media import FilmInfo, Frame, Window, probe, read_frames
from gpen_cli.video.person import followed_person
from gpen_cli.video.pipeline import restore_frames
from gpen_cli.video.smoothing import smoothed_landmarks
from gpen_cli.video.writer import FilmWriter, join_parts

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
_NO_FRAMES = ".none"  # marker of a segment that holds no frame (audio beyond the video)


@dataclass(frozen=True)
class VideoOptions:
    window: Window = Window()
    codec: str | None = None
    crf: int | None = None  # None: the writer's default for CRF encoders
    segment: float | None = None  # seconds
    smooth: bool = True
    overwrite: bool = False


@dataclass
class VideoOutcome:
    written: Path | None  # the output, or the partial file of a stopped run
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    segments_done: int = 0  # segments found complete from an earlier run
    segments: int = 0
    cut_short: bool = False  # the input's frames ended before its header said

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


def partial_path(output: Path) -> Path:
    """Where a stopped run leaves what it restored: clearly not the finished film."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def segments_dir(output: Path) -> Path:
    return output.with_name(f"{output.name}.segments")


def _temporary(path: Path) -> Path:
    """A hidden name beside `path`, that fits wherever `path` fits (`atomic.partial_key`)."""
    key = partial_key(path, path.suffix)
    return path.with_name(f".{key}.{secrets.token_hex(4)}{path.suffix}")


def _remove_stale(path: Path) -> None:
    """Temporary files a killed run left for `path`."""
    key = glob.escape(partial_key(path, path.suffix))
    for stale in path.parent.glob(f".{key}.*{glob.escape(path.suffix)}"):
        stale.unlink(missing_ok=True)


@dataclass
class VideoJob:
    """A checked plan: the film read, the output allowed, the segments left to do. An
    engine that restores films runs it (`Engine.run`, by its `kind`)."""

    kind: ClassVar[str] = "film"
    source: Path
    output: Path
    options: VideoOptions
    info: FilmInfo
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> Window:
        return self.options.window

    def segment_windows(self) -> list[Window]:
        window, length = self.window, Fraction(str(self.options.segment))
        end = self.info.duration if window.end is None else min(window.end, self.info.duration)
        count = max(1, math.ceil((end - window.start) / length))
        return [
            Window(window.start + k * length, min(window.start + (k + 1) * length, end))
            for k in range(count)
        ]

    def part_path(self, index: int) -> Path:
        return segments_dir(self.output) / f"part{index:05d}{self.output.suffix}"

    def frames_to_do(self) -> int | None:
        """Frames this run will restore, as far as the header tells (for an ETA)."""
        if not self.options.segment:
            return self.info.frames_in(self.window)
        counts = [
            self.info.frames_in(window)
            for index, window in enumerate(self.segment_windows())
            if not self._part_done(index)
        ]
        return None if None in counts else sum(counts)

    def _part_done(self, index: int) -> bool:
        part = self.part_path(index)
        return part.exists() or part.with_suffix(_NO_FRAMES).exists()

    # ------------------------------------------------------------------ running

    def run(
        self,
        restorer: FaceRestorer,
        stop: threading.Event | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> VideoOutcome:
        """Restore the film (or its missing segments, then join them)."""
        stop = stop or threading.Event()
        started = time.perf_counter()
        outcome = VideoOutcome(written=None)
        with ExitStack() as stack:
            followers = []  # what follows faces across frames, restarted at each segment
            if self.options.smooth:
                rate = float(self.info.rate or 25)
                followers.append(stack.enter_context(smoothed_landmarks(restorer, rate)))
            if (person := stack.enter_context(followed_person(restorer))) is not None:
                followers.append(person)
            if not self.options.segment:
                self._film(restorer, self.window, self.output, stop, on_frame, outcome)
            else:
                self._segments(restorer, followers, stop, on_frame, outcome)
        outcome.seconds = time.perf_counter() - started
        outcome.interrupted = stop.is_set()
        return outcome

    def _film(
        self,
        restorer: FaceRestorer,
        window: Window,
        target: Path,
        stop: threading.Event,
        on_frame: Callable[[Frame], None] | None,
        outcome: VideoOutcome,
    ) -> int:
        """Restore `window` into `target` (atomically); returns the frames written."""
        _remove_stale(target)
        temporary = _temporary(target)
        options = self.options
        writer = FilmWriter(
            temporary,
            self.info,
            codec=options.codec,
            crf=options.crf,
            offset=self.window.start,
            shown=target,
            warn=False,  # plan_video's trial said what is left out
        )
        frames, last_time = 0, None
        try:
            for frame, image in restore_frames(restorer, read_frames(self.info, window, stop)):
                writer.write(frame, image)
                frames, last_time = frames + 1, frame.time
                outcome.frames += 1
                outcome.faces += frame.faces
                if on_frame is not None:
                    on_frame(frame)
        except BaseException:
            writer.discard()  # the first error is the one to tell
            temporary.unlink(missing_ok=True)
            raise
        if not stop.is_set() and self._cut_short(window, last_time):
            outcome.cut_short = True
        if frames == 0:
            writer.discard()
            temporary.unlink(missing_ok=True)
            return 0
        try:
            writer.close()
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        final = partial_path(target) if stop.is_set() else target
        os.replace(temporary, final)
        outcome.written = final
        return frames

    def _cut_short(self, window: Window, last_time: Fraction | None) -> bool:
        """Whether the frames end well before the header says the film does (one warning
        line then: the output holds what could be read, and the run exits 1)."""
        info = self.info
        if info.duration is None or not info.rate:
            return False
        expected = info.duration if window.end is None else min(window.end, info.duration)
        reached = window.start if last_time is None else last_time + 1 / info.rate
        if reached < expected - 2 / info.rate:
            logger.warning(
                "%s: the frames end at %.2f s but the film should last %.2f s "
                "(truncated or damaged?); the output holds what could be read",
                self.source,
                reached,
                expected,
            )
            return True
        return False

    def _segments(self, restorer, followers, stop, on_frame, outcome: VideoOutcome) -> None:
        folder = segments_dir(self.output)
        self._check_plan(folder)
        windows = self.segment_windows()
        outcome.segments = len(windows)
        for index, window in enumerate(windows):
            if self._part_done(index):
                outcome.segments_done += 1
                continue
            if stop.is_set():
                return
            for follower in followers:
                follower.reset()  # segments are independent of each other
            part = self.part_path(index)
            partial_path(part).unlink(missing_ok=True)
            if not self._film(restorer, window, part, stop, on_frame, outcome):
                part.with_suffix(_NO_FRAMES).touch()
            if stop.is_set():
                return
        _remove_stale(self.output)
        temporary = _temporary(self.output)
        parts = [self.part_path(i) for i in range(len(windows)) if self.part_path(i).exists()]
        try:
            join_parts(parts, temporary, shown=self.output)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, self.output)
        outcome.written = self.output
        shutil.rmtree(folder, ignore_errors=True)

    def _check_plan(self, folder: Path) -> None:
        """Segments on disk count only if an identical run made them."""
        plan = {
            "input": str(self.source.resolve()),
            "input_size": self.source.stat().st_size,
            "segment": self.options.segment,
            "start": str(self.window.start),
            "end": str(self.window.end),
            "codec": self.options.codec,
            "crf": self.options.crf,
            "smooth": self.options.smooth,
            **self.fingerprint,
        }
        plan_file = folder / PLAN_FILE
        if plan_file.exists():
            try:
                earlier = json.loads(plan_file.read_text())
            except (OSError, ValueError):
                earlier = None
            if earlier == plan:
                return
            if not self.options.overwrite:
                raise OutputError(
                    Phrase(
                        f"{folder} holds segments of a run with other settings; "
                        "`overwrite` deletes them and starts again",
                        "overwrite",
                    )
                )
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        plan_file.write_text(json.dumps(plan, indent=2))


def _check_names(output: Path, options: VideoOptions) -> None:
    """The output, and what a stop or segments would name after it, fit the file system."""
    derived = segments_dir(output) if options.segment else partial_path(output)
    for path in (output, derived):
        reason = name_too_long(path)
        if reason is not None:
            raise OutputError(f"{reason}; choose a shorter output name")


def plan_video(
    source: Path, output: Path, options: VideoOptions, fingerprint: dict[str, Any] | None = None
) -> VideoJob:
    """Check everything that can be checked before models load: the input reads, the
    window lies inside the film, the output may be written."""
    source, output = Path(source), Path(output)
    info = probe(source)
    _check_names(output, options)
    same = output.exists() and os.path.samefile(output, source)  # hard links too
    if same or output.resolve() == source.resolve():
        raise OutputError(f"{output}: the output would replace the input")
    # Written beside the output: no link at its name, its partial's or its segments'.
    for written in (output, partial_path(output), segments_dir(output)):
        check_inside(written, output.parent)
    if not output.suffix:
        raise OutputError(f"{output}: give the output a file type (.mp4, .mkv, .mov…)")
    if output.exists() and not options.overwrite:
        raise OutputError(Phrase(f"{output} exists; `overwrite` replaces it", "overwrite"))
    window = options.window
    if info.duration is not None and window.start >= info.duration:
        raise InputError(
            Phrase(
                f"{source}: `start` {float(window.start):g} s is past its end "
                f"({float(info.duration):.2f} s)",
                "start",
            )
        )
    if options.segment is not None:
        if options.segment <= 0:
            raise GpenError(
                Phrase(f"`segment` must be more than 0 seconds, got {options.segment}", "segment")
            )
        if info.duration is None:
            raise InputError(f"{source}: its duration is unknown, so it cannot be segmented")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Encoder, container and copied streams are checked by opening the output for real.
    trial = _temporary(output)
    try:
        FilmWriter(trial, info, codec=options.codec, crf=options.crf, shown=output).discard()
    finally:
        trial.unlink(missing_ok=True)
    return VideoJob(source, output, options, info, dict(fingerprint or {}))
