"""The model registry: one `ModelSpec` per weights file, and the one table of them.

Everything that names models is derived from this table: the detector choices and their
help, `gpen weights`, doctor's self-test, bench's random stand-ins, which entry a checkpoint
file is. A new model is one `register(ModelSpec(...))` call beside its implementation, with
a callable builder and a `random_init` for running without the real weights.

This module imports neither torch nor OpenCV (builders and random initialisations import
them when called), so `gpen --help` and validating names stay light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from gpen_cli.core.errors import GpenError
from gpen_cli.core.names import match_name

ModelKind = Literal[
    "gpen", "detector", "parsing", "landmarks", "upsampler", "recognition", "assessment"
]
KIND_NAMES: dict[str, str] = {
    "gpen": "GPEN model",
    "detector": "face detector",
    "parsing": "face-parsing model",
    "landmarks": "landmark model",
    "upsampler": "upsampler",
    "recognition": "face-recognition model",
    "assessment": "face-quality model",
}


@dataclass(frozen=True)
class lazy:  # noqa: N801  (used as a function: `lazy("module:attribute")`)
    """The callable "module:attribute", imported only when it is called: a built-in entry
    names a heavy implementation without importing it."""

    target: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable weights file and how to build the module it holds.

    `builder` is called as `builder(path, **build_options, **options)` (options such as
    `device` come from the pipeline; a detector's are `DetectorBuilder`'s, in
    `gpen_cli.stages.detect`); a "module:attribute" string is imported when called.
    `config` is the published layout of a generator or upsampler: what `verify` checks a
    file against. `random_init(seed)` returns the network the file holds with
    seeded random weights (its `state_dict()` saved is a file the builder loads), for the
    self-test, bench and tests when the real file is absent. `recognises(path)` says whether
    a checkpoint file is one of this entry's, from its tensors. `rank` orders entries of a
    kind when one is picked for a check (the self-test tries the lowest first).
    """

    name: str
    filename: str
    url: str
    kind: ModelKind
    builder: Callable[..., Any] | str
    build_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    size_bytes: int | None = None
    sha256: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    random_init: Callable[[int], Any] | None = field(default=None, hash=False, compare=False)
    recognises: Callable[[Path], bool] | None = field(default=None, hash=False, compare=False)
    rank: int = 0

    def __post_init__(self) -> None:
        # Specs are shared module-wide: a caller must not be able to edit one in place.
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "build_options", MappingProxyType(dict(self.build_options)))
        if isinstance(self.builder, str):
            object.__setattr__(self, "builder", lazy(self.builder))

    def build(self, path: Path, **options: Any) -> Any:
        """The module in `path`, built by this entry's builder."""
        assert callable(self.builder)
        return self.builder(path, **self.build_options, **options)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry; refused when one of its names or its file is taken."""
    taken = {alias.lower(): owner for alias, owner in names().items()}
    clash = [alias for alias in (spec.name, *spec.aliases) if alias.lower() in taken]
    if clash:
        owner = taken[clash[0].lower()]
        raise GpenError(f"cannot register {spec.name}: the name {clash[0]!r} is {owner}'s")
    files = {other.filename.lower(): other.name for other in MODELS.values()}
    if spec.filename.lower() in files:
        owner = files[spec.filename.lower()]
        raise GpenError(f"cannot register {spec.name}: {spec.filename} is {owner}'s file")
    MODELS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove the entry `name` (for tests and embedders that registered one for a while)."""
    MODELS.pop(name, None)


def of_kind(kind: ModelKind) -> list[ModelSpec]:
    """The entries of `kind`, lowest `rank` first (registry order among equals)."""
    return sorted((spec for spec in MODELS.values() if spec.kind == kind), key=lambda s: s.rank)


def names(kind: ModelKind | None = None) -> dict[str, str]:
    """Every name and alias of the entries of `kind` (all kinds when None) → entry name,
    each entry's aliases before its name (`retinaface` before `retinaface-resnet50`)."""
    return {
        alias: spec.name
        for spec in MODELS.values()
        if kind is None or spec.kind == kind
        for alias in (*spec.aliases, spec.name)
    }


def get_spec(name: str, kind: ModelKind | None = None) -> ModelSpec:
    """The registry entry for `name` (any case, aliases too), or an error with a "did you
    mean" and the names of that kind."""
    known = names(kind)
    what = KIND_NAMES[kind] if kind else "model"
    return MODELS[known[match_name(name, known, what)]]


def check_file_or_name(value: str | Path, kind: ModelKind) -> None:
    """Refuse `value` unless it is a file or names an entry of `kind`, saying what it is
    instead (an entry of another kind, or nothing: then with a suggestion). Reads nothing."""
    if Path(value).is_file():
        return
    try:
        get_spec(str(value), kind)
    except GpenError as exc:
        lowered = {alias.lower(): entry for alias, entry in names().items()}
        other = lowered.get(str(value).lower())
        if other is not None:
            what = KIND_NAMES[MODELS[other].kind]
            raise GpenError(f"{value!r} is a {what}, not a {KIND_NAMES[kind]}") from None
        if Path(value).is_dir():
            raise GpenError(f"{value} is a folder, not a checkpoint file; name the file") from None
        raise GpenError(f"no such file, and {exc}") from None


def recognises(spec: ModelSpec, path: Path) -> bool:
    """Whether `spec`'s recogniser takes `path` for one of its files (unreadable: no)."""
    if spec.recognises is None:
        return False
    try:
        return bool(spec.recognises(path))
    except GpenError:
        return False


def spec_for_file(path: Path, kind: ModelKind) -> ModelSpec:
    """The entry of `kind` a checkpoint file is: the one builder when all entries of `kind`
    share it (a GPEN generator or an SR network is built from its tensors' own layout),
    else the one entry that recognises the file; a one-line error when it cannot be told."""
    candidates = of_kind(kind)
    ways = {(spec.builder, repr(sorted(spec.build_options.items()))) for spec in candidates}
    if len(ways) == 1:
        return candidates[0]
    recognised = [spec for spec in candidates if recognises(spec, path)]
    if len(recognised) == 1:
        return recognised[0]
    what = KIND_NAMES[kind]
    if recognised:
        both = " or ".join(spec.name for spec in recognised)
        raise GpenError(f"{path}: cannot tell which {what} this file is: it could be {both}")
    known = ", ".join(spec.name for spec in candidates)
    raise GpenError(f"{path}: cannot tell which {what} this file is (none of {known})")


def _load_builtins() -> None:
    from gpen_cli.weights import catalog  # noqa: F401  (registers the built-in entries)


_load_builtins()
