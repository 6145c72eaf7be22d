"""The batch pipeline: decoding, detection, pasting and encoding overlap with the generator.

    scan ─▶ N prepare workers ─▶ 1 forward thread ─▶ N finish workers ─▶ main thread
            decode, detect,      faces of several    paste back,        progress,
            align, crop          photos per batch    encode, write      report

Every queue between stages is bounded, so at most a few dozen photos are in memory however
large the folder. Torch and OpenCV release the GIL in their kernels, so threads overlap.

Stopping: setting `stop` ends the scan and drops photos not yet started; the photos in
flight are finished and written. A failure of the machinery itself (not of one photo) aborts
every stage and is raised again in the caller's thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpen_cli.batch import steps
from gpen_cli.batch.gather import Completed, CropGatherer
from gpen_cli.batch.layout import BatchLayout, remove_stale_partials
from gpen_cli.batch.lock import output_folder_lock
from gpen_cli.batch.scan import Task, plan_items
from gpen_cli.report import ReportEntry
from gpen_cli.restorer import FaceRestorer

logger = logging.getLogger(__name__)

_DONE = object()  # end of a stage's stream
_POLL_SECONDS = 0.1  # how often a blocked stage looks whether the run was aborted


class _Aborted(Exception):
    """The run is being torn down: leave the stage."""


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class BatchOptions:
    """How a folder is restored (the pipeline options live in the FaceRestorer)."""

    ext: str = "same"
    recursive: bool = True
    pattern: str | None = None
    overwrite: bool = False
    aligned: bool = False
    save_faces: bool = False
    compare: bool = False
    workers: int = field(default_factory=default_workers)
    # How long the generator waits for more faces before running a partial batch.
    gather_seconds: float = 0.05

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


@dataclass
class BatchOutcome:
    entries: list[ReportEntry]  # sorted by input path
    interrupted: bool
    seconds: float
    faces: int  # faces that went through the generator and were written

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


class _Pipeline:
    def __init__(
        self, restorer: FaceRestorer, options: BatchOptions, stop: threading.Event
    ) -> None:
        self.restorer = restorer
        self.options = options
        self.stop = stop
        self.abort = threading.Event()
        self.failure: BaseException | None = None
        self.write_options = steps.WriteOptions(
            options.overwrite, options.aligned, options.save_faces, options.compare
        )
        # Photos in memory at once: about 4 x workers, plus one per face in a forward batch.
        depth = options.workers
        self.tasks: queue.Queue[Any] = queue.Queue(2 * depth)  # paths only
        self.prepared: queue.Queue[Any] = queue.Queue(depth)
        self.restored: queue.Queue[Any] = queue.Queue(depth)
        self.results: queue.Queue[Any] = queue.Queue()  # entries are small; never blocks
        self.faces = 0

    # ------------------------------------------------------------------ queue helpers

    def _put(self, where: queue.Queue, item: Any) -> None:
        while True:
            if self.abort.is_set():
                raise _Aborted
            try:
                where.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _get(self, where: queue.Queue, timeout: float | None = None) -> Any:
        """The next item, or queue.Empty once `timeout` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.abort.is_set():
                raise _Aborted
            wait = _POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return where.get_nowait()
            try:
                return where.get(timeout=wait)
            except queue.Empty:
                continue

    def _thread(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except _Aborted:
                pass
            except BaseException as exc:  # a bug in the machinery: stop everything, report it
                logger.debug("batch %s thread failed", name, exc_info=True)
                if self.failure is None:
                    self.failure = exc
                self.abort.set()

        thread = threading.Thread(target=guarded, name=f"gpen-batch-{name}", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ stages

    def feed(self, items: Iterable[Task | ReportEntry]) -> None:
        try:
            for item in items:
                if self.stop.is_set():
                    break
                if isinstance(item, ReportEntry):
                    self.results.put(item)
                else:
                    self._put(self.tasks, item)
        finally:
            if not self.abort.is_set():
                for _ in range(self.options.workers):
                    self._put(self.tasks, _DONE)

    def prepare(self, last_one_out: _Countdown) -> None:
        while (task := self._get(self.tasks)) is not _DONE:
            if self.stop.is_set():
                continue  # not started yet: left for the next run
            started = time.perf_counter()
            try:
                item = steps.prepare(self.restorer, task)
            except Exception as exc:  # one bad photo must not take the others down
                self.results.put(steps.failed_entry(task, exc, started))
                continue
            self._put(self.prepared, item)
        if last_one_out.done():
            self._put(self.prepared, _DONE)

    def forward(self) -> None:
        gatherer: CropGatherer[steps.Prepared] = CropGatherer(self.restorer.batch_size)
        upstream_done = False
        while True:
            if gatherer.full or (gatherer.pending and upstream_done):
                self._run_batch(gatherer)
                continue
            if upstream_done:
                break
            wait = None
            if gatherer.pending:
                wait = 0.0 if self.stop.is_set() else self.options.gather_seconds
            try:
                item = self._get(self.prepared, wait)
            except queue.Empty:
                self._run_batch(gatherer)  # nothing more came in time: run a partial batch
                continue
            if item is _DONE:
                upstream_done = True
                continue
            for completed in gatherer.add(item, item.prepared.model_inputs):
                self._pass_on(completed)
        for _ in range(self.options.workers):
            self._put(self.restored, _DONE)

    def _run_batch(self, gatherer: CropGatherer[steps.Prepared]) -> None:
        batch = gatherer.take()
        if batch is None:
            return
        try:
            restored, error = self.restorer.forward(batch.crops), None
        except Exception as exc:  # e.g. out of device memory: these photos fail, not the run
            restored, error = None, exc
        for completed in gatherer.deliver(batch, restored, error):
            self._pass_on(completed)

    def _pass_on(self, completed: Completed[steps.Prepared]) -> None:
        if completed.error is not None:
            item = completed.item
            self.results.put(steps.failed_entry(item.task, completed.error, item.started))
        else:
            self._put(self.restored, completed)

    def finish(self, last_one_out: _Countdown) -> None:
        while (completed := self._get(self.restored)) is not _DONE:
            entry = steps.finish(
                self.restorer, completed.item, completed.restored, self.write_options
            )
            self.results.put(entry)
        if last_one_out.done():
            self.results.put(_DONE)

    # ------------------------------------------------------------------ the run

    def run(
        self,
        items: Iterable[Task | ReportEntry],
        on_entry: Callable[[ReportEntry], None] | None,
    ) -> list[ReportEntry]:
        workers = self.options.workers
        preparing, finishing = _Countdown(workers), _Countdown(workers)
        threads = [self._thread(self.feed, "scan", items)]
        threads += [self._thread(self.prepare, f"prepare{i}", preparing) for i in range(workers)]
        threads.append(self._thread(self.forward, "forward"))
        threads += [self._thread(self.finish, f"finish{i}", finishing) for i in range(workers)]
        entries: list[ReportEntry] = []
        completed = False
        try:
            while (entry := self._get(self.results)) is not _DONE:
                entries.append(entry)
                self.faces += steps.faces_restored(entry, self.options.aligned)
                if on_entry is not None:
                    on_entry(entry)
            completed = True
        except _Aborted:
            pass  # a stage failed: its error is raised below
        finally:
            if not completed:
                self.abort.set()
            for thread in threads:
                thread.join(timeout=None if completed else 5)
        if self.failure is not None:
            raise self.failure
        return entries


class _Countdown:
    """Tells the last of N workers that it is the last one to leave."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._lock = threading.Lock()

    def done(self) -> bool:
        with self._lock:
            self._count -= 1
            return self._count == 0


def run_batch(
    restorer: FaceRestorer,
    items: Iterable[Task | ReportEntry],
    options: BatchOptions | None = None,
    *,
    stop: threading.Event | None = None,
    on_entry: Callable[[ReportEntry], None] | None = None,
) -> BatchOutcome:
    """Restore every Task of `items` (entries in it are passed through as they are).

    `on_entry` sees each entry as it completes, in completion order, in this thread;
    the outcome's entries are sorted by input path.
    """
    options = options or BatchOptions()
    stop = stop or threading.Event()
    started = time.perf_counter()
    pipeline = _Pipeline(restorer, options, stop)
    entries = pipeline.run(items, on_entry)
    return BatchOutcome(
        entries=sorted(entries, key=lambda entry: entry.input),
        interrupted=stop.is_set(),
        seconds=time.perf_counter() - started,
        faces=pipeline.faces,
    )


def restore_folder(
    restorer: FaceRestorer,
    layout: BatchLayout,
    options: BatchOptions | None = None,
    *,
    stop: threading.Event | None = None,
    on_entry: Callable[[ReportEntry], None] | None = None,
) -> BatchOutcome:
    """Restore the photos of `layout.input_dir` into `layout.output_dir`, mirroring the tree.

    The output folder is locked for the whole run (a second run on it raises GpenError).
    Temporary files a killed run left in the output tree are removed first; outputs that
    exist are skipped as already done unless `options.overwrite`.
    """
    options = options or BatchOptions()
    with output_folder_lock(layout.output_dir):
        remove_stale_partials(layout.output_dir)
        items = plan_items(
            layout,
            ext=options.ext,
            recursive=options.recursive,
            pattern=options.pattern,
            overwrite=options.overwrite,
        )
        return run_batch(restorer, items, options, stop=stop, on_entry=on_entry)
