"""The stage registry: which stage objects `FaceRestorer` runs, in which step, in what order.

An entry names a stage, the step it runs in ("prepare": one photo; "forward": crops of any
number of photos; "finish": one photo), where it goes (just after or just before another entry
of its step, else after the entries registered before it) and a builder: given the restorer's
`StageContext`, the stage object, or None where this configuration does not run it. The
restorer walks the entries once, when it is built, to make its three lists; `stage_names()`
gives every name a stage is timed under, in pipeline order, for `gpen bench`'s table. So a new
stage is one module that registers it (plus, when it is optional, the configuration field and
the option that turn it on): nothing else names it.

Where entries come from, on the first read (`entries`, `build_stages`, `stage_names`): the
built-in stages (`builtin.py`, in pipeline order), then every other module of this package,
imported so that a module placed here registers itself, then the modules that installed
packages name in the entry-point group `gpen_cli.stages`. A module's registrations may name
stages registered later as their place: places are resolved when the lists are read.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal

from gpen_cli.core.errors import GpenError

if TYPE_CHECKING:
    from gpen_cli.core.config import RestoreConfig
    from gpen_cli.stages.detect import Detector, FanLandmarks
    from gpen_cli.stages.forward import GpenForward
    from gpen_cli.stages.mask import Masker
    from gpen_cli.stages.score import FaceScorer, IdentityEmbedder
    from gpen_cli.stages.upscale import Upscaler

Step = Literal["prepare", "forward", "finish"]
STEPS: tuple[Step, ...] = ("prepare", "forward", "finish")
ENTRY_POINT_GROUP = "gpen_cli.stages"

# Timed by the engines around the restorer (reading and writing the files), not stages of it.
_BEFORE_EVERY_STAGE = ("decode",)
_AFTER_EVERY_STAGE = ("encode",)


@dataclass(frozen=True)
class StageContext:
    """What builders get: the restorer's configuration and the networks it resolved (None
    where the configuration runs none of that kind)."""

    config: RestoreConfig
    generator: GpenForward  # its `size` is the crops' size, its `source` the model's name
    upscaler: Upscaler | None = None
    detector: Detector | None = None
    refiner: FanLandmarks | None = None
    masker: Masker | None = None
    embedder: IdentityEmbedder | None = None
    scorer: FaceScorer | None = None
    on_tile: Callable[[int, int], None] | None = None  # the upsampler's progress

    @property
    def size(self) -> int:
        return self.generator.size


Builder = Callable[[StageContext], Any]


@dataclass(frozen=True)
class StageEntry:
    """One stage of the pipeline. `name` is unique and is what `after`/`before` name;
    `timed_as` is the name its stage object carries and is timed under, where several entries
    share one (both resizes are "resize"); it defaults to `name`."""

    name: str
    step: Step
    build: Builder
    after: str | None = None
    before: str | None = None
    timed_as: str | None = None

    @property
    def timer(self) -> str:
        return self.timed_as or self.name


_ENTRIES: dict[str, StageEntry] = {}  # in registration order
_discovered = False


def register(entry: StageEntry) -> StageEntry:
    """Add a stage to the pipeline of every restorer built from now on."""
    if entry.step not in STEPS:
        raise ValueError(f"stage {entry.name!r}: step must be one of {', '.join(STEPS)}")
    if entry.after is not None and entry.before is not None:
        raise ValueError(f"stage {entry.name!r}: give its place after or before, not both")
    if entry.name in _ENTRIES or entry.name in _BEFORE_EVERY_STAGE + _AFTER_EVERY_STAGE:
        raise ValueError(f"stage {entry.name!r} is registered already")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Take a registered stage out again (restorers built before keep their lists)."""
    del _ENTRIES[name]


def entries(step: Step) -> list[StageEntry]:
    """The step's entries in the order its stages run."""
    _discover()
    own = [entry for entry in _ENTRIES.values() if entry.step == step]
    order = [entry for entry in own if entry.after is None and entry.before is None]
    pending = [entry for entry in own if entry not in order]
    while pending:
        names = [entry.name for entry in order]
        entry = next((e for e in pending if (e.after or e.before) in names), None)
        if entry is None:
            missing = pending[0]
            raise GpenError(
                f"stage {missing.name!r}: no {step} stage named "
                f"{missing.after or missing.before!r} to run "
                f"{'after' if missing.after else 'before'}"
            )
        order.insert(_place(order, entry), entry)
        pending.remove(entry)
    return order


def _place(order: list[StageEntry], entry: StageEntry) -> int:
    """Where `entry` goes in `order`: just before its `before`, or after its `after` and after
    the entries placed after that one before it (so they keep their registration order)."""
    names = [existing.name for existing in order]
    if entry.before is not None:
        return names.index(entry.before)
    place = names.index(entry.after) + 1
    while place < len(order) and order[place].after == entry.after:
        place += 1
    return place


def build_stages(step: Step, context: StageContext) -> list[Any]:
    """The step's stage objects for one restorer, in order (the entries whose builder gives
    None are not in this configuration)."""
    built = (entry.build(context) for entry in entries(step))
    return [stage for stage in built if stage is not None]


def stage_names() -> tuple[str, ...]:
    """Every name a stage is timed under, in the order a photo meets them, with the
    engines' "decode" first and "encode" last."""
    names = dict.fromkeys(entry.timer for step in STEPS for entry in entries(step))
    return (*_BEFORE_EVERY_STAGE, *names, *_AFTER_EVERY_STAGE)


def _discover() -> None:
    """Import, once, the built-in stages, this package's other modules and the modules
    installed packages name under `ENTRY_POINT_GROUP`: importing one registers its stages."""
    global _discovered
    if _discovered:
        return
    _discovered = True  # first: a module that reads the registry as it loads starts no loop
    try:
        importlib.import_module("gpen_cli.stages.builtin")
        package = importlib.import_module("gpen_cli.stages")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"gpen_cli.stages.{module.name}")
        for point in entry_points(group=ENTRY_POINT_GROUP):
            _load_plugin(point)
    except BaseException:
        _discovered = False  # the next read tries again, rather than run a partial pipeline
        raise


def _load_plugin(point: EntryPoint) -> None:
    """Import an installed package's stage module; GpenError naming it when that fails."""
    try:
        point.load()
    except Exception as exc:
        raise GpenError(
            f"stage plugin {point.name} ({point.value}) failed to load: {exc}"
        ) from None
