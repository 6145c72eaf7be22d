"""Command-line choices read from the model registry when a command runs, not when the
module is imported: a detector registered later is accepted and listed in `--help` too."""

from __future__ import annotations

from collections.abc import Callable

try:  # Typer 0.26 runs its own copy of click: a choice must be of that copy's types.
    from typer._types import TyperChoice as _Choice
except ImportError:  # older Typer runs the click package itself
    from click import Choice as _Choice


class RegistryChoice(_Choice):
    """A choice (ignoring case) whose names come from `choices()` on each use."""

    def __init__(self, choices: Callable[[], list[str]]) -> None:  # no fixed list to store
        self._choices = choices
        self.case_sensitive = False

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(self._choices())
