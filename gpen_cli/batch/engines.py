"""The engines, in one table: `gpen restore`, `gpen batch` and `gpen video` pick theirs here.

An entry says how the engine is made ready from the pipeline's configuration (models
loaded, or only the weight files checked where the models load elsewhere), what a command
shows meanwhile, and what a first stop does. A new engine is a class implementing `Engine`
and a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gpen_cli.batch.engine import Engine
from gpen_cli.batch.ray_engine import RayEngine, RayOptions
from gpen_cli.batch.runner import ThreadEngine, default_workers
from gpen_cli.core.config import RestoreConfig
from gpen_cli.pipeline.resolve import fetch_weights, torch_device
from gpen_cli.pipeline.restorer import FaceRestorer


@dataclass(frozen=True)
class EngineSetup:
    """What a command tells the engine it picks, besides the pipeline's configuration."""

    workers: int = field(default_factory=default_workers)  # threads beside the generator
    on_tile: Callable[[int, int], None] | None = None  # each upscaled tile, where shown
    ray: RayOptions = field(default_factory=RayOptions)  # where Ray runs, for the Ray engine


@dataclass(frozen=True)
class EngineChoice:
    """One engine of the table."""

    ready: Callable[[RestoreConfig, EngineSetup], Engine]  # the engine, once it can run
    getting_ready: str  # what a command shows while `ready` runs
    stopping: str  # what the first stop signal does


def _threads(config: RestoreConfig, setup: EngineSetup) -> Engine:
    """The models loaded in this process."""
    return ThreadEngine(FaceRestorer(config=config, on_tile=setup.on_tile), setup.workers)


def _ray(config: RestoreConfig, setup: EngineSetup) -> Engine:
    """The actors load the models: here the weight files are only fetched and checked (and,
    for a local Ray, the device), so a cluster's head node needs neither a GPU nor the
    models' memory."""
    fetch_weights(config)
    if setup.ray.address is None:
        torch_device(config)
    return RayEngine(config, setup.ray)


# The thread engine's first stop: the faces in the generator are finished and their photos
# written; the photos not there yet are left for a rerun.
ENGINES: dict[str, EngineChoice] = {
    "thread": EngineChoice(_threads, "Loading models…", "finishing the faces being restored"),
    "ray": EngineChoice(_ray, "Checking the weights…", "cancelling the Ray job"),
}
DEFAULT_ENGINE = "thread"
