"""`gpen batch --engine ray`: the thread engine on every model actor, fed by Ray Data.

    driver: plan_items ──▶ Ray Data: photo paths, a few per call ──▶ GpenActor pool ──▶ driver
    (list the tree,        (streamed, retried on a fault)           (each one process:   report
     skip done outputs)                                              the thread engine)   entries

Each model actor loads the models once and runs the thread engine (`ThreadEngine`) for the
whole job, fed by Ray Data's calls: decoding, detection, the generator, pasting and writing
overlap in its threads exactly as in `gpen batch --engine thread`, so the outputs are the
same bytes. Only paths and report entries cross process boundaries, and only the actors load
models: Ray adds one process per actor, not a process per step.

Why one process does every step of a photo: oneDNN's CPU convolutions round differently with
different thread counts (a 1x1 convolution in RetinaFace moves by about 1e-6 between 1 and 2
threads, which changes the face crops), so every step that runs a model must use the thread
engine's torch thread count to give its bytes. Separate Ray workers for detection, each with
that many threads, oversubscribed the cores and each loaded the models; an actor running the
thread engine runs no more threads than the thread engine does.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpen_cli.batch.engine import Engine, PhotoProgress, Tally
from gpen_cli.batch.job import GivenItems, Item, PhotoJob
from gpen_cli.batch.runner import ThreadEngine, default_workers
from gpen_cli.batch.scan import Task
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError, Phrase, joined
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.report import ReportEntry
from gpen_cli.pipeline.restorer import FaceRestorer

INSTALL_HINT = "pip install 'gpen-cli[ray]'"
ACTOR_GATHER_SECONDS = 0.05
# What a model actor claims besides its GPU: a token for placement. Its threads use the cores
# the node has, as the thread engine's do; a whole core each would refuse a second actor on a
# machine with one core.
ACTOR_CPUS = 0.25
# Calls Ray Data keeps running on each actor at once. They wait in the actor's threads while
# its pipeline works through their photos, so the pipeline never runs dry between calls.
CALLS_PER_ACTOR = 8


@dataclass(frozen=True)
class RayOptions:
    """Where the pipeline runs and how wide the model stage is."""

    address: str | None = None  # None: start a local Ray on this machine
    cpus: int | None = None  # CPUs of a local Ray; None: all of this machine's
    model_actors: int = 1  # GpenActor processes, each with its own copy of the models
    gpus_per_actor: float = 0.0
    photos_per_call: int = 2  # photos of one Ray Data call (its report entries come together)
    # torch threads of every actor; None keeps Ray's (the actor's CPU claim). A CPU forward's
    # float sums depend on the thread count, so equal counts give the thread engine's bytes.
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.model_actors < 1:
            problem = f"`model_actors` must be at least 1, got {self.model_actors}"
        elif self.gpus_per_actor < 0:
            problem = f"`gpus_per_actor` must be 0 or more, got {self.gpus_per_actor}"
        elif self.address is not None and self.cpus is not None:
            problem = "`cpus` sets a local Ray's CPUs; a cluster (`address`) has its own"
        else:
            return
        raise GpenError(Phrase(problem, "model_actors", "gpus_per_actor", "cpus", "address"))


class GpenActor:
    """The models, loaded once, and the thread engine running over every photo this actor
    is given; each call hands in a few photos and returns their report entries."""

    def __init__(
        self, settings: RestoreConfig, output: OutputOptions, workers: int, threads: int | None
    ) -> None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self._tasks: queue.Queue[Task] = queue.Queue()
        self._waiting: dict[str, Future[ReportEntry]] = {}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        # An actor's queue never ends: a partial batch runs when no photo came in time.
        engine = ThreadEngine(
            FaceRestorer(config=settings), workers, gather_seconds=ACTOR_GATHER_SECONDS
        )
        # The driver sent only photos without an output (the output folder is locked): one
        # that exists now was written by this job, before a fault made Ray run its call
        # again. Writing it again replaces it with the same bytes and reports it "ok".
        rerun_safe = dataclasses.replace(output, overwrite=True)
        job = PhotoJob(GivenItems(iter(self._tasks.get, None)), rerun_safe)
        threading.Thread(
            target=self._serve, args=(engine, job), name="gpen-ray-engine", daemon=True
        ).start()

    def _serve(self, engine: ThreadEngine, job: PhotoJob) -> None:
        """Run the thread engine for the actor's lifetime; a failure fails every call."""
        try:
            engine.run(job, on_event=self._deliver)
        except BaseException as exc:  # a bug in the machinery: every call raises it
            with self._lock:
                self._failure = exc
                waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                future.set_exception(exc)

    def _deliver(self, event: PhotoProgress) -> None:
        """Hand a finished photo's entry to the call that brought the photo in."""
        if event.entry is None:
            return
        with self._lock:
            future = self._waiting.pop(event.entry.input)
        future.set_result(event.entry)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[ReportEntry]]:
        """Queue the call's photos behind those of the other calls; wait for their entries."""
        futures: list[Future[ReportEntry]] = []
        for task in batch["task"]:
            future: Future[ReportEntry] = Future()
            with self._lock:
                if self._failure is not None:
                    raise self._failure
                self._waiting[str(task.source)] = future
            self._tasks.put(task)
            futures.append(future)
        return {"entry": [future.result() for future in futures]}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (pyarrow: fails here when it does not fit numpy)
    except ImportError as exc:
        raise GpenError(
            Phrase(f"`engine` ray needs Ray Data ({exc}); {INSTALL_HINT}", "engine")
        ) from None
    return ray


# The HTTP/2 client preface, then an empty SETTINGS frame: what a gRPC client sends first.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 4


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT nobody answers at, in seconds: Ray itself keeps retrying for minutes."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' or no address: Ray finds (or starts) the cluster itself
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(_HTTP2_PREFACE)
            answer = connection.recv(9)
    except OSError as exc:
        raise GpenError(
            Phrase(f"`address` {address}: no Ray cluster answers there ({exc})", "address")
        ) from None
    # Ray's head (and its client server) speak gRPC, so answer the HTTP/2 preface with a
    # SETTINGS frame (9-byte header, type 4); anything else is not Ray, where Ray itself
    # would retry for minutes, a warning every five seconds.
    if len(answer) < 9 or answer[3] != _HTTP2_SETTINGS:
        raise GpenError(
            Phrase(
                f"`address` {address}: something answers there, but not a Ray cluster (Ray's "
                "head listens on port 6379 unless `ray start --port` said otherwise)",
                "address",
            )
        )


def start_error(where: str, exc: BaseException) -> GpenError:
    """Why Ray did not start, in one line; how to present the token where that was why (Ray
    2.60's `ray start` turns token authentication on, and a driver must be told to use it)."""
    message = joined(where, f": cannot start Ray: {str(exc).strip().splitlines()[0]}")
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "AuthenticationError":
            return GpenError(
                joined(message, "; the cluster wants its token: set RAY_AUTH_MODE=token")
            )
        cause = cause.__cause__
    return GpenError(message)


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Connect to the cluster at `options.address`, or start a quiet local Ray; a session
    the caller already started (tests, notebooks) is used as it is and left running."""
    ray = _import_ray()
    # Ray Data reports each execution and its internal choices at INFO/WARNING: not news to
    # a user of gpen, whose progress bar and report say how the photos went.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if ray.is_initialized():
        yield ray
        return
    check_reachable(options.address)
    try:
        ray.init(
            # "local": a new Ray of our own even where `ray start` left one running here
            # (without an address, Ray would join that one and refuse num_cpus).
            address=options.address or "local",
            num_cpus=None if options.address else (options.cpus or os.cpu_count()),
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            # Ray lowers its workers' priority (nice 15); here they do all of the job's work,
            # and should compete for the CPU as the thread engine's threads do.
            _system_config=None if options.address else {"worker_niceness": 0},
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = Phrase(f"`address` {options.address}", "address")
        where = where if options.address else "a local Ray"
        raise start_error(where, exc) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def build_dataset(
    ray: Any,
    tasks: list[Task],
    settings: RestoreConfig,
    output: OutputOptions,
    ray_options: RayOptions,
) -> Any:
    """The lazy Ray Data pipeline restoring `tasks`; iterating it yields report entries."""
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # the CLI draws its own
    per_call = ray_options.photos_per_call
    return ray.data.from_items(
        [{"task": task} for task in tasks], override_num_blocks=math.ceil(len(tasks) / per_call)
    ).map_batches(
        GpenActor,
        fn_constructor_kwargs={
            "settings": settings,
            "output": output,
            # The thread engine's workers on every actor: --workers, as a local Ray's CPUs.
            "workers": ray_options.cpus or default_workers(),
            "threads": ray_options.torch_threads,
        },
        batch_size=per_call,
        batch_format="numpy",
        compute=ActorPoolStrategy(
            size=ray_options.model_actors,
            max_tasks_in_flight_per_actor=CALLS_PER_ACTOR,
            max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
            # Else Ray Data runs one call at a time per actor, whatever the two above say,
            # and the actor's engine sees only that call's photos: nothing to overlap.
            enable_true_multi_threading=True,
        ),
        num_cpus=ACTOR_CPUS,
        num_gpus=ray_options.gpus_per_actor or None,
    )


def run_job(
    tasks: list[Task],
    settings: RestoreConfig,
    output: OutputOptions,
    ray_options: RayOptions,
    stop: threading.Event,
    record: Callable[[ReportEntry], None],
) -> None:
    """Restore `tasks` on Ray, recording each entry as it arrives, until done or `stop`."""
    with ray_session(ray_options) as ray:
        rows = iter(build_dataset(ray, tasks, settings, output, ray_options).iter_rows())
        try:
            for row in rows:
                record(row["entry"])
                if stop.is_set():
                    break
        except ray.exceptions.RayError as exc:
            if not stop.is_set():  # a terminal's Ctrl-C also reaches Ray's processes
                first = str(exc).strip().splitlines()[0]
                raise GpenError(f"the Ray job failed: {first}") from None
        finally:
            rows.close()  # ends the job, cancelling what is still in flight


def written_unreported(
    tasks: list[Task], entries: list[ReportEntry], since: float
) -> list[ReportEntry]:
    """Entries for the photos whose output this job wrote but whose entry never came back.

    A stop ends the job with calls in flight: an actor may have published an output before
    Ray cancelled the call that would have brought its entry. The output folder is locked
    and an output is published whole, so an output of an unreported task that is newer than
    the job's start is this job's finished work; the report says so rather than nothing.
    """
    reported = {entry.input for entry in entries}
    found: list[ReportEntry] = []
    for task in tasks:
        if str(task.source) in reported:
            continue
        try:
            written = task.output.lstat()
        except OSError:
            continue
        if stat.S_ISREG(written.st_mode) and written.st_mtime >= math.floor(since):
            found.append(
                ReportEntry(
                    input=str(task.source),
                    output=str(task.output),
                    status="ok",
                    note=f"{task.source}: written as the job stopped; its faces were not "
                    "counted (their entry was lost with the stop)",
                )
            )
    return found


class RayEngine(Engine):
    """`gpen batch --engine ray`: Ray Data hands the photos to model actors, each running
    the thread engine; this process plans the job, and only the actors load models.

    A stop ends the job at the next finished photo: Ray cancels the steps in flight; a write
    it interrupts leaves only a hidden temporary file, removed by the next run.
    """

    name = "ray"

    def __init__(self, settings: RestoreConfig, options: RayOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RayOptions()

    @property
    def aligned(self) -> bool:
        return self.settings.aligned

    def restore(
        self, items: Iterable[Item], output: OutputOptions, stop: threading.Event, tally: Tally
    ) -> bool:
        tasks: list[Task] = []
        for item in items:
            if isinstance(item, Task):
                tasks.append(item)
            else:
                tally(item)
        if tasks and not stop.is_set():
            job_started = time.time()
            run_job(tasks, self.settings, output, self.options, stop, tally)
            for entry in written_unreported(tasks, tally.entries, job_started):
                tally(entry)
        return stop.is_set()
