"""The engine: decoding, detection, pasting and encoding overlap with the generator.

    caller thread ─▶ prepare pool ─▶ forward thread ─▶ finish pool ─▶ caller thread
    scan, admit      decode, detect,   faces of several  paste back,     report entries,
    each photo       align, crop       photos per batch  encode, write   progress hooks

At most `4 × workers + batch size` photos are admitted and not yet written, so memory is
bounded however long the list, and at most `2 × workers` of them are decoded or waiting
ahead of the generator: enough to keep it fed, few for a Ctrl-C to finish. Torch and
OpenCV release the GIL in their kernels, so the threads overlap. What the threads share
sits in `_Shared`, behind one lock whose condition wakes whoever waits for a change:
nothing needs an end marker, and only `stop` is polled (below).

`ThreadEngine` is this engine behind the one interface (`engine.py`): the job's preamble
and tally are the interface's, the items of the job run through the threads here.

Stopping: setting `stop` ends the scan and drops every photo none of whose faces has been
through the generator yet, and every photo with faces still waiting for it (a rerun does
them); the batch in the generator is finished, and the photos it completes are written. So
a stop takes one forward and the writes behind it, however many photos are admitted. The
forward thread looks at `stop` between batches, the caller's thread a few times a second
while it waits (a signal handler setting `stop` wakes no waiting thread). A failure
of the machinery itself (not of one photo) aborts the run and is raised again in the caller.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gpen_cli.batch import steps
from gpen_cli.batch.engine import Engine, PhotoProgress, Tally
from gpen_cli.batch.job import Item
from gpen_cli.batch.scan import Task
from gpen_cli.flow.gather import Completed, CropGatherer
from gpen_cli.flow.read_ahead import END, ReadAhead
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.report import ReportEntry
from gpen_cli.pipeline.restorer import FaceRestorer

logger = logging.getLogger(__name__)

# How often the caller's thread, waiting, looks whether `stop` was set.
STOP_CHECK_SECONDS = 0.2


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


Event = ReportEntry | PhotoProgress


class _Aborted(Exception):
    """The run is being torn down: leave the stage."""


class _Shared:
    """What the threads of one run share, behind one lock; every change wakes the waiters."""

    def __init__(self, limit: int, ahead: int, stop: threading.Event) -> None:
        self.changed = threading.Condition()
        self.stop = stop
        self.stopping = False  # `stop` was seen: no photo goes to the generator any more
        self.limit = limit  # photos admitted at once
        self.ahead = ahead  # of those, photos being prepared or prepared, not yet gathered
        self.admitted = 0  # photos admitted and not yet written, failed or dropped
        self.preparing = 0  # of those, photos whose prepare step has not ended
        self.feeding = True
        # Prepared photos by admission number; the forward thread takes them in that order.
        self.ready: dict[int, steps.Prepared] = {}
        self.gone: set[int] = set()  # admission numbers of photos that failed or were dropped
        self.next_number = 0  # the admission number the forward thread takes next
        self.events: list[Event] = []  # for the caller's hooks
        self.aborted = False
        self.failure: BaseException | None = None
        self.dropped = 0  # photos admitted and left undone after a stop
        self.admissions = 0  # photos admitted so far

    def has_room(self) -> bool:
        """Whether one more photo may be admitted."""
        return self.admitted < self.limit and self.preparing + len(self.ready) < self.ahead

    def drained(self) -> bool:
        return self.admitted == 0

    def admit(self) -> int:
        """One more photo in flight; its admission number."""
        with self.changed:
            self.admitted += 1
            self.preparing += 1
            self.admissions += 1
            return self.admissions - 1

    def drop(self, number: int) -> None:
        """A photo admitted but not started when the run was stopped leaves it undone."""
        with self.changed:
            self.gone.add(number)
            self.preparing -= 1
            self.admitted -= 1
            self.dropped += 1
            self.changed.notify_all()

    def end_prepare(self, number: int, item: steps.Prepared | None, event: Event | None) -> None:
        """The prepare step of photo `number` ended: `item` goes on to the generator (after
        a stop it is dropped); without one the photo failed, and `event` is its entry."""
        with self.changed:
            self.preparing -= 1
            if item is not None and not self.stopping:
                self.ready[number] = item
            else:
                self.gone.add(number)
                self.admitted -= 1
                if item is not None:
                    self.dropped += 1
                    event = None
            if event is not None:
                self.events.append(event)
            self.changed.notify_all()

    def look_at_stop(self) -> bool:
        """Whether the run is stopping (`check_stop`, taking the lock)."""
        with self.changed:
            self.check_stop()
            return self.stopping

    def check_stop(self) -> None:
        """Once `stop` is set: the prepared photos waiting for the generator are dropped,
        and every thread is woken to see it. Called under the lock."""
        if self.stopping or not self.stop.is_set():
            return
        self.stopping = True
        self.gone.update(self.ready)
        self.admitted -= len(self.ready)
        self.dropped += len(self.ready)
        self.ready.clear()
        self.changed.notify_all()

    def abandon(self, photos: int) -> None:
        """After a stop, `photos` with faces still waiting for the generator are left undone."""
        with self.changed:
            self.admitted -= photos
            self.dropped += photos
            self.changed.notify_all()

    def post(self, *events: Event, leaving: int = 0) -> None:
        """Events for the caller; `leaving` photos are done with (their entries are posted)."""
        with self.changed:
            self.events.extend(events)
            self.admitted -= leaving
            self.changed.notify_all()

    def end_feed(self) -> None:
        with self.changed:
            self.feeding = False
            self.changed.notify_all()

    def abort(self, failure: BaseException | None = None) -> None:
        with self.changed:
            self.aborted = True
            self.failure = self.failure or failure
            self.changed.notify_all()

    def next_ready(self, timeout: float | None) -> steps.Prepared | None:
        """The next prepared photo in admission order; None when it did not come within
        `timeout` seconds (None: no limit), none will come any more, or the run is stopping."""
        with self.changed:
            self.changed.wait_for(
                lambda: (
                    self._next_is_ready() or self._upstream_done() or self.aborted or self.stopping
                ),
                timeout,
            )
            if self.aborted:
                raise _Aborted
            if self.stopping or not self._next_is_ready():
                return None
            self.changed.notify_all()  # room for one more photo ahead
            item = self.ready.pop(self.next_number)
            self.next_number += 1
            return item

    def _next_is_ready(self) -> bool:
        """Whether the photo the forward thread takes next is prepared; read under the lock.
        Photos that failed or were dropped are passed over."""
        while self.next_number in self.gone:
            self.gone.remove(self.next_number)
            self.next_number += 1
        return self.next_number in self.ready

    def _upstream_done(self) -> bool:
        """No photo is being prepared, and none will be admitted any more."""
        return not self.feeding and self.preparing == 0

    def take_events(self, until: Callable[[], bool]) -> tuple[list[Event], bool]:
        """Wait for events or for `until()` (read under the lock); the events, and whether
        `until()` held. Waiting, it looks at `stop` every STOP_CHECK_SECONDS."""
        with self.changed:
            while True:
                self.check_stop()
                if self.events or until() or self.aborted:
                    break
                self.changed.wait(STOP_CHECK_SECONDS)
            if self.aborted:
                raise _Aborted
            events, self.events = self.events, []
            return events, until()


class _Run:
    """One run: the pools, the forward thread, and the caller's side (scan and hooks)."""

    def __init__(
        self,
        engine: ThreadEngine,
        output: OutputOptions,
        stop: threading.Event,
        tally: Tally,
    ) -> None:
        self.restorer = engine.restorer
        self.gather_seconds = engine.gather_seconds
        self.output = output
        self.tally = tally
        workers = engine.workers
        limit = 4 * workers + self.restorer.batch_size
        self.shared = _Shared(limit, 2 * workers, stop)
        self.scan_cut = False  # the scan was stopped before its end
        self.preparers = ThreadPoolExecutor(workers, thread_name_prefix="gpen-prepare")
        # The forward loop lives as long as the run, in a daemon thread: an exiting process
        # joins every pool's threads, and a Ray actor's run never sees its input end.
        self.forwarder = threading.Thread(
            target=self._forward_loop, name="gpen-forward", daemon=True
        )
        self.finishers = ThreadPoolExecutor(workers, thread_name_prefix="gpen-finish")

    # ------------------------------------------------------------------ the caller's side

    def run(self, items: Iterable[Task | ReportEntry]) -> None:
        try:
            self.forwarder.start()
            self._feed(items)
            self._serve(self.shared.drained)
        except _Aborted:
            pass  # a stage failed: its error is raised below, once every thread is done
        except BaseException:
            self.shared.abort()
            raise
        finally:
            self.preparers.shutdown(wait=True, cancel_futures=True)
            if self.forwarder.is_alive():
                self.forwarder.join()
            self.finishers.shutdown(wait=True, cancel_futures=True)
        if self.shared.failure is not None:
            raise self.shared.failure

    def _feed(self, items: Iterable[Task | ReportEntry]) -> None:
        """Admit each photo when there is room for it, serving the hooks while waiting, also
        while the next input is awaited (a source may block: a Ray actor's task queue)."""
        shared = self.shared
        ahead = ReadAhead(items, name="gpen-scan", changed=shared.changed)
        try:
            while True:
                self._serve(lambda: ahead.ready() or shared.stopping)
                if shared.stopping:
                    self.scan_cut = not ahead.at_end()
                    break
                item = ahead.take()
                if item is END:
                    break
                if isinstance(item, ReportEntry):
                    self._dispatch(item)
                    continue
                self._serve(lambda: shared.has_room() or shared.stopping)
                if shared.stopping:
                    self.scan_cut = True
                    break
                self._submit(self.preparers, self._prepare, item, shared.admit())
        finally:
            ahead.close(timeout=1.0)  # at once, unless it waits on a blocking source
        shared.end_feed()

    @property
    def left_undone(self) -> bool:
        """Whether a stop left photos for a rerun (one after the last photo's faces went
        through the generator did not)."""
        return self.scan_cut or self.shared.dropped > 0

    def _serve(self, until: Callable[[], bool]) -> None:
        """Hand the events to the hooks, in this thread, until `until()` holds."""
        while True:
            events, done = self.shared.take_events(until)
            for event in events:
                self._dispatch(event)
            if done:
                return

    def _dispatch(self, event: Event) -> None:
        self.tally(event)

    def _submit(self, pool: ThreadPoolExecutor, job: Callable[..., None], *args: object) -> None:
        pool.submit(job, *args).add_done_callback(self._check)

    def _check(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._failed(future.exception())

    def _failed(self, failure: BaseException) -> None:
        """A job that raised is a bug in the machinery, not a bad photo: abort the run."""
        if not isinstance(failure, _Aborted):
            logger.debug("batch engine job failed", exc_info=failure)
            self.shared.abort(failure)

    # ------------------------------------------------------------------ the jobs

    def _prepare(self, task: Task, number: int) -> None:
        if self.shared.look_at_stop() or self.shared.aborted:  # not started: left undone
            self.shared.drop(number)
            return
        self.shared.post(PhotoProgress(str(task.source), "started"))
        started = time.perf_counter()
        try:
            item = steps.prepare(self.restorer, task)
        except Exception as exc:  # one bad photo must not take the others down
            self.shared.end_prepare(number, None, steps.failed_entry(task, exc, started))
            return
        found = len(item.prepared.model_inputs)
        self.shared.end_prepare(number, item, PhotoProgress(str(task.source), "found", found))

    def _forward_loop(self) -> None:
        try:
            self._forward()
        except BaseException as exc:
            self._failed(exc)

    def _forward(self) -> None:
        """Pack the faces of the photos, in the order they were admitted, into batches of the
        generator's size; a partial batch runs when no photo is left to come, or (with
        `gather_seconds`) when the next photo did not come in time. After a stop, the photos
        with faces still waiting are left undone."""
        gatherer: CropGatherer[steps.Prepared] = CropGatherer(self.restorer.batch_size)
        while True:
            if self.shared.look_at_stop():
                self.shared.abandon(len(gatherer.discard()))
                return
            if gatherer.full:
                self._run_batch(gatherer)
                continue
            wait = self.gather_seconds if gatherer.pending else None
            item = self.shared.next_ready(wait)
            if item is not None:
                self._pass_on(gatherer.add(item, item.prepared.model_inputs))
            elif self.shared.stopping:
                continue
            elif gatherer.pending:
                self._run_batch(gatherer)  # nothing more came in time
            else:
                return  # nothing waits and nothing more will come

    def _run_batch(self, gatherer: CropGatherer[steps.Prepared]) -> None:
        batch = gatherer.take()
        try:
            restored, error = self.restorer.forward(batch.crops), None
        except Exception as exc:  # e.g. out of device memory: these photos fail, not the run
            restored, error = None, exc
        completed = gatherer.deliver(batch, restored, error)
        if error is None:
            self.shared.post(
                *(
                    PhotoProgress(str(item.task.source), "restored", total, done)
                    for item, done, total in batch.photos()
                )
            )
        self._pass_on(completed)

    def _pass_on(self, completed: list[Completed[steps.Prepared]]) -> None:
        for photo in completed:
            if photo.error is None:
                self._submit(self.finishers, self._finish, photo)
            else:
                item = photo.item
                failed = steps.failed_entry(item.task, photo.error, item.started)
                self.shared.post(failed, leaving=1)

    def _finish(self, photo: Completed[steps.Prepared]) -> None:
        entry = steps.finish(self.restorer, photo.item, photo.restored, self.output)
        self.shared.post(entry, leaving=1)


class ThreadEngine(Engine):
    """This process's threads (`gpen restore`, `gpen batch --engine thread`, `gpen video`):
    the models loaded once here, photos and films restored with them."""

    name = "thread"

    def __init__(
        self,
        restorer: FaceRestorer,
        workers: int | None = None,
        gather_seconds: float | None = None,
    ) -> None:
        self.restorer = restorer
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        # How long the generator waits for more faces before running a partial batch. None:
        # it waits until no photo is left to come, so which faces share a batch depends on
        # the photos alone, never on timing or on `workers`, and so do the output bytes. A
        # source that never ends (a Ray actor's queue) needs a time.
        self.gather_seconds = gather_seconds

    @property
    def aligned(self) -> bool:
        return self.restorer.aligned

    def restore(
        self, items: Iterable[Item], output: OutputOptions, stop: threading.Event, tally: Tally
    ) -> bool:
        run = _Run(self, output, stop, tally)
        run.run(items)
        return run.left_undone

    def run_film(self, job: Any, stop: threading.Event, on_event: Callable | None) -> Any:
        """A film, frame by frame through this restorer (`VideoJob.run`)."""
        return job.run(self.restorer, stop, on_event)
