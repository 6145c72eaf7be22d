"""The one interface every engine implements: `Engine.run(job, stop, on_event) -> outcome`.

    job ─▶ preamble ─────────▶ engine.restore(items) ─▶ tally ───────────▶ outcome
           lock, stale files,  each engine its own way  entries, faces,    sorted entries,
           plan (job.py)       (threads, Ray…)          progress events    undone, faces/s

The preamble and the tally are written here once; an engine only restores the Tasks it is
handed and tells the tally of each entry and step. A job of photos (`PhotoJob`) runs on any
engine; a film (`gpen video`'s job, kind "film") only on an engine that restores films.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from gpen_cli.batch import steps
from gpen_cli.batch.job import Item, PhotoJob
from gpen_cli.core.errors import GpenError
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.report import ReportEntry

Stage = Literal["started", "found", "restored", "done"]


@dataclass
class BatchOutcome:
    entries: list[ReportEntry]  # sorted by input path
    interrupted: bool  # stopped with photos left undone, which a rerun does
    seconds: float
    faces: int  # faces that went through the generator and were written

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PhotoProgress:
    """One step of one photo, with the run's totals as the engine counts them then.

    Stages: "started" (decoding and detection begin), "found" (`faces_found` known),
    "restored" (`faces_restored` of them through the generator so far), "done" (its report
    `entry` is recorded, with its `status`; a file skipped has only this one). The totals are
    filled in by the tally, in the caller's thread.
    """

    source: str
    stage: Stage
    faces_found: int = 0
    faces_restored: int = 0
    photos_done: int = 0  # report entries recorded in the run, any status
    faces_done: int = 0  # faces restored and written in the run
    status: str | None = None  # "done": the entry's status (a skipped file took no work)
    entry: ReportEntry | None = None  # "done": the photo's report entry


OnEvent = Callable[[PhotoProgress], None]


class Tally:
    """The run's entries and totals, counted once per report entry; each event goes on to
    the caller's hook stamped with the totals. Engines call it in the caller's thread."""

    def __init__(self, aligned: bool, on_event: OnEvent | None = None) -> None:
        self.aligned = aligned
        self.on_event = on_event
        self.entries: list[ReportEntry] = []
        self.faces = 0

    def __call__(self, event: ReportEntry | PhotoProgress) -> None:
        """Record an entry (its photo's "done" step) or a step of a photo in flight."""
        if isinstance(event, ReportEntry):
            self.entries.append(event)
            self.faces += steps.faces_restored(event, self.aligned)
            count = event.faces.count
            event = PhotoProgress(event.input, "done", count, status=event.status, entry=event)
        if self.on_event is not None:
            self.on_event(replace(event, photos_done=len(self.entries), faces_done=self.faces))


class Engine(ABC):
    """Restores a job's photos, its own way; what is around that is written here once."""

    name: str = "engine"

    @property
    @abstractmethod
    def aligned(self) -> bool:
        """Whether the photos are aligned face crops (one face each, restored whole)."""

    def run(
        self, job: Any, stop: threading.Event | None = None, on_event: OnEvent | None = None
    ) -> Any:
        """Run `job` until done or `stop` is set; `on_event` sees each step of each photo
        (each frame of a film), in this thread. A job of photos gives a BatchOutcome, its
        entries sorted by input path."""
        stop = stop or threading.Event()
        if job.kind == "film":
            return self.run_film(job, stop, on_event)
        return self._run_photos(job, stop, on_event)

    def _run_photos(
        self, job: PhotoJob, stop: threading.Event, on_event: OnEvent | None
    ) -> BatchOutcome:
        started = time.perf_counter()
        tally = Tally(self.aligned, on_event)
        with job.source.open(job.output) as items:
            undone = self.restore(items, job.output, stop, tally)
        return BatchOutcome(
            entries=sorted(tally.entries, key=lambda entry: entry.input),
            interrupted=undone,
            seconds=time.perf_counter() - started,
            faces=tally.faces,
        )

    @abstractmethod
    def restore(
        self, items: Iterable[Item], output: OutputOptions, stop: threading.Event, tally: Tally
    ) -> bool:
        """Restore the Tasks of `items` (entries in it are handed to `tally` as they are),
        telling `tally` each entry and step; whether a stop left photos for a rerun."""

    def run_film(self, job: Any, stop: threading.Event, on_event: Callable | None) -> Any:
        """A film, for an engine that restores films; others refuse it."""
        raise GpenError(f"the {self.name} engine restores photos, not films")
