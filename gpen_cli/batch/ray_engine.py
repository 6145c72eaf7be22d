"""`gpen batch --engine ray`: the batch steps as a Ray Data pipeline, from one machine to a cluster.

    plan_items ─▶ prepare ─────────▶ GpenActor pool ──────────▶ finish ──────────▶ driver
    (driver:      (CPU tasks:        (one model per actor:      (CPU tasks:        report entries,
    skip done)    decode, detect,    GPEN + parsing mask on     paste back,        progress
                  align, crop)       the faces of many photos)  atomic write)

The work of each photo is the thread engine's (`steps.prepare`, `FaceRestorer.forward`,
`steps.finish`), so the outputs are the same bytes; Ray only decides where each step runs.
Each row is one photo, held in a single object column: Ray pickles it, numpy arrays and all.
Ray Data streams the rows with bounded memory between the steps and, by its defaults, retries
the tasks of a worker that dies and restarts a killed actor, which then redoes its calls.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpen_cli.batch import steps
from gpen_cli.batch.layout import BatchLayout, remove_stale_partials
from gpen_cli.batch.lock import output_folder_lock
from gpen_cli.batch.runner import BatchOptions, BatchOutcome
from gpen_cli.batch.scan import Task, plan_items
from gpen_cli.config import RestoreConfig
from gpen_cli.errors import GpenError
from gpen_cli.report import ReportEntry
from gpen_cli.restorer import FaceRestorer, RestoredFace

INSTALL_HINT = "pip install 'gpen-cli[ray]'"
# What a decode/detect or paste/encode step claims: its work is short and partly I/O, so two
# share a core. A claim unlike the model actor's also keeps Ray Data from fusing these steps
# into the actor (it fuses neighbouring steps whose claims match), so they stay CPU tasks.
CPU_STEP_CPUS = 0.5
# What a model actor without a GPU claims: a token for placement. Its torch threads use the
# cores the other steps leave; a whole core each would leave none for the CPU steps (and so
# stall the job) as soon as there are as many actors as CPUs.
CPU_ACTOR_CPUS = 0.25


@dataclass(frozen=True)
class RayOptions:
    """Where the pipeline runs and how wide the model stage is."""

    address: str | None = None  # None: start a local Ray on this machine
    cpus: int | None = None  # CPUs of a local Ray; None: all of this machine's
    model_actors: int = 1  # GpenActor processes, each with its own copy of the models
    gpus_per_actor: float = 0.0
    photos_per_call: int = 8  # photos whose faces one actor call runs together
    # torch threads of every worker; None keeps Ray's (the worker's CPU claim). A CPU forward's
    # float sums depend on the thread count, so equal counts give the thread engine's bytes.
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.model_actors < 1:
            raise GpenError(f"--model-actors must be at least 1, got {self.model_actors}")
        if self.gpus_per_actor < 0:
            raise GpenError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_actor}")
        if self.address is not None and self.cpus is not None:
            raise GpenError("--workers sets a local Ray's CPUs; a cluster (--address) has its own")


@dataclass
class Photo:
    """One row of the pipeline: a photo and how far it got (`entry` once it is finished)."""

    task: Task
    prepared: steps.Prepared | None = None
    restored: list[RestoredFace] | None = None
    entry: ReportEntry | None = None


def _set_torch_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def cpu_restorer(settings: RestoreConfig, threads: int | None) -> FaceRestorer:
    """The restorer of the CPU steps, built once per worker process (Ray reuses them)."""
    _set_torch_threads(threads)
    return FaceRestorer(config=settings.but(device="cpu"))


def prepare_row(
    row: dict[str, Any], settings: RestoreConfig, threads: int | None
) -> dict[str, Any]:
    """Decode and detect one photo (CPU task); a failure finishes the photo."""
    photo: Photo = row["photo"]
    started = time.perf_counter()
    try:
        photo.prepared = steps.prepare(cpu_restorer(settings, threads), photo.task)
    except Exception as exc:  # one bad photo must not take the others down
        photo.entry = steps.failed_entry(photo.task, exc, started)
    return {"photo": photo}


class GpenActor:
    """The generator and the parsing mask, loaded once; each call restores the faces of a
    batch of photos together, in forward batches of the restorer's batch size."""

    def __init__(self, settings: RestoreConfig, threads: int | None) -> None:
        _set_torch_threads(threads)
        self.restorer = FaceRestorer(config=settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        waiting = [photo for photo in batch["photo"] if photo.entry is None]
        crops = [crop for photo in waiting for crop in photo.prepared.prepared.model_inputs]
        try:
            restored = self.restorer.forward(crops) if crops else []
        except Exception as exc:  # e.g. out of device memory: these photos fail, not the run
            for photo in waiting:
                photo.entry = steps.failed_entry(photo.task, exc, photo.prepared.started)
        else:
            start = 0
            for photo in waiting:
                count = len(photo.prepared.prepared.model_inputs)
                photo.restored = restored[start : start + count]
                start += count
        return {"photo": batch["photo"]}


def finish_row(
    row: dict[str, Any],
    settings: RestoreConfig,
    threads: int | None,
    write_options: steps.WriteOptions,
) -> dict[str, Any]:
    """Paste back and write one photo (CPU task); only its report entry goes on."""
    photo: Photo = row["photo"]
    if photo.entry is None:
        restorer = cpu_restorer(settings, threads)
        photo.entry = steps.finish(restorer, photo.prepared, photo.restored, write_options)
    return {"entry": photo.entry}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (pyarrow: fails here when it does not fit numpy)
    except ImportError as exc:
        raise GpenError(f"--engine ray needs Ray Data ({exc}); {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT nobody answers at, in seconds: Ray itself keeps retrying for minutes."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' or no address: Ray finds (or starts) the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise GpenError(f"--address {address}: no Ray cluster answers there ({exc})") from None


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
            address=options.address,
            num_cpus=None if options.address else (options.cpus or os.cpu_count()),
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            # Ray lowers its workers' priority (nice 15); here they do all of the job's work,
            # and should compete for the CPU as the thread engine's threads do.
            _system_config=None if options.address else {"worker_niceness": 0},
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--address {options.address}" if options.address else "a local Ray"
        raise GpenError(f"{where}: cannot start Ray: {str(exc).strip().splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def build_dataset(
    ray: Any,
    tasks: list[Task],
    settings: RestoreConfig,
    write_options: steps.WriteOptions,
    options: RayOptions,
) -> Any:
    """The lazy Ray Data pipeline restoring `tasks`; iterating it yields report entries."""
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # the CLI draws its own
    worker = {"settings": settings, "threads": options.torch_threads}
    return (
        # One photo per block: Ray Data streams blocks, so each photo moves on to the next
        # step as soon as it is ready (bundled again into batches for the actors).
        ray.data.from_items(
            [{"photo": Photo(task)} for task in tasks], override_num_blocks=len(tasks)
        )
        .map(prepare_row, fn_kwargs=worker, num_cpus=CPU_STEP_CPUS)
        .map_batches(
            GpenActor,
            fn_constructor_kwargs=worker,
            batch_size=options.photos_per_call,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=options.model_actors),
            num_cpus=0 if options.gpus_per_actor else CPU_ACTOR_CPUS,
            num_gpus=options.gpus_per_actor or None,
        )
        .map(
            finish_row, fn_kwargs={**worker, "write_options": write_options}, num_cpus=CPU_STEP_CPUS
        )
    )


def restore_folder_ray(
    settings: RestoreConfig,
    layout: BatchLayout,
    options: BatchOptions,
    ray_options: RayOptions,
    *,
    stop: threading.Event | None = None,
    on_entry: Callable[[ReportEntry], None] | None = None,
) -> BatchOutcome:
    """`restore_folder` on Ray: the same lock, resume, outputs and report entries.

    Setting `stop` ends the job at the next finished photo: Ray cancels the steps in flight;
    a write it interrupts leaves only a hidden temporary file, removed by the next run.
    """
    stop = stop or threading.Event()
    started = time.perf_counter()
    write_options = steps.WriteOptions(
        options.overwrite, options.aligned, options.save_faces, options.compare
    )
    entries: list[ReportEntry] = []
    faces = 0

    def record(entry: ReportEntry) -> None:
        nonlocal faces
        entries.append(entry)
        faces += steps.faces_restored(entry, options.aligned)
        if on_entry is not None:
            on_entry(entry)

    with output_folder_lock(layout.output_dir):
        remove_stale_partials(layout.output_dir)
        tasks: list[Task] = []
        for item in plan_items(
            layout,
            ext=options.ext,
            recursive=options.recursive,
            pattern=options.pattern,
            overwrite=options.overwrite,
        ):
            if isinstance(item, Task):
                tasks.append(item)
            else:
                record(item)
        if tasks and not stop.is_set():
            with ray_session(ray_options) as ray:
                dataset = build_dataset(ray, tasks, settings, write_options, ray_options)
                rows = iter(dataset.iter_rows())
                try:
                    for row in rows:
                        record(row["entry"])
                        if stop.is_set():
                            break
                except ray.exceptions.RayError as exc:
                    first = str(exc).strip().splitlines()[0]
                    raise GpenError(f"the Ray job failed: {first}") from None
                finally:
                    rows.close()  # ends the job, cancelling what is still in flight
    return BatchOutcome(
        entries=sorted(entries, key=lambda entry: entry.input),
        interrupted=stop.is_set(),
        seconds=time.perf_counter() - started,
        faces=faces,
    )
