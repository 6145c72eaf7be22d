"""The import contract: the package is built in layers, and a lower layer never imports a higher
one, not even inside a function. So the core (names, errors, configuration, the registry)
stays importable without torch or the pipeline, and a stage never reaches back into an engine
or the command line. A module added to the package must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gpen_cli

PACKAGE = Path(gpen_cli.__file__).parent

# Lowest first. A module may import its own layer and any layer below it. An entry names a
# folder or a module (dotted, under gpen_cli); the longest entry that contains a module gives
# its layer, so a folder may hold a module of a lower layer: weights/ holds the torch-free
# registry table (the core's configuration checks names against it) and the checkpoint reader
# the networks load through.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("core", "weights.registry", "weights.catalog"),
    "io": ("io",),
    "models": ("models", "weights.checkpoints"),
    "weights": ("weights",),
    "stages": ("stages",),
    "pipeline": ("pipeline",),
    "flow": ("flow",),
    "engines": ("batch", "video"),
    "tools": ("bench", "doctor", "review", "export"),
    "command line": ("cli", "__main__"),
}  # fmt: skip
RANK = {name: rank for rank, names in enumerate(LAYERS.values()) for name in names}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}
OUTSIDE = len(LAYERS)  # the package root: above every layer


def dotted(path: Path) -> str:
    """A file's module under gpen_cli, dotted ("weights.registry"; a package for __init__.py)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry(module: str) -> str | None:
    """The longest LAYERS entry that is the module or a folder holding it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def rank(module: str) -> int:
    """A module's rank; a package's own __init__ runs before any of its modules is imported,
    so it ranks with the lowest module it holds and may import only what that one may."""
    ranks = [RANK[e] for e in (entry(module),) if e is not None]
    ranks += [RANK[name] for name in RANK if name.startswith(module + ".")]
    return min(ranks, default=OUTSIDE)


def is_module(module: str) -> bool:
    """Whether gpen_cli.<module> is a module or a package (not a name defined in one)."""
    path = PACKAGE.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every gpen_cli module the file imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "a relative import (write it absolute)"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gpen_cli"):
            base = node.module.removeprefix("gpen_cli").lstrip(".")
            for alias in node.names:
                name = f"{base}.{alias.name}".lstrip(".")
                found.append((node.lineno, name if is_module(name) else base))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name.removeprefix("gpen_cli."))
                for alias in node.names
                if alias.name.startswith("gpen_cli.")
            ]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({dotted(p) for p in MODULES if entry(dotted(p)) is None})
    assert not unplaced, f"give these a layer in tests/test_layers.py: {unplaced}"


def layer_name(rank_: int) -> str:
    return list(LAYERS)[rank_] if rank_ < OUTSIDE else "the package root"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    own = rank(dotted(path))
    upward = [
        f"line {line}: {name} ({layer_name(rank(name))})"
        for line, name in imported(path)
        if name.startswith("a relative") or rank(name) > own
    ]
    assert not upward, f"{path.relative_to(PACKAGE)} ({layer_name(own)}) imports " + "; ".join(
        upward
    )
