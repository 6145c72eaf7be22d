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

# Lowest first. A module may import its own layer and any layer below it.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": (
        "errors", "names", "defaults", "words", "timing", "version", "devices", "memory",
        "confine", "preflight", "atomic", "checkpoints", "registry", "builtin_models", "config",
        "named_networks", "settings",
    ),
    "models": ("models",),
    "weights": ("weights",),
    "stages": ("stages",),
    "pipeline": ("restorer", "resolve", "outputs", "report", "offline"),
    "engines": ("batch", "video"),
    "tools": ("bench", "doctor", "review", "export"),
    "command line": ("cli", "__main__"),
}  # fmt: skip
RANK = {name: rank for rank, names in enumerate(LAYERS.values()) for name in names}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def top_level(path: Path) -> str:
    """The package's top-level module or sub-package a file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every gpen_cli module the file imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "a relative import (write it absolute)"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gpen_cli"):
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name.split(".")[1])
                for alias in node.names
                if alias.name.startswith("gpen_cli.")
            ]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({top_level(p) for p in MODULES} - set(RANK))
    assert not unplaced, f"give these a layer in tests/test_layers.py: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    own = top_level(path)
    upward = [
        f"line {line}: {name} ({LAYER_OF.get(name, 'the package root')})"
        for line, name in imported(path)
        if RANK.get(name, len(RANK)) > RANK[own]
    ]
    assert not upward, f"{path.relative_to(PACKAGE)} ({LAYER_OF[own]}) imports " + "; ".join(upward)
