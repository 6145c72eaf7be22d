"""Command-line choices read from the model registry when a command is built, not when
this module is imported: a detector registered later is accepted and listed in `--help`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typer.models import OptionInfo

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


class LiveHelpOption(OptionInfo):
    """A `typer.Option` whose help is `describe()`, written each time the command is built."""

    def __init__(self, describe: Callable[[], str], **options: Any) -> None:
        self._describe = describe
        super().__init__(**options)

    @property
    def help(self) -> str:  # type: ignore[override]
        return self._describe()

    @help.setter
    def help(self, _value: str | None) -> None:  # OptionInfo sets it; `describe` decides
        pass


def registry_option(kind: str, what: str, **options: Any) -> LiveHelpOption:
    """An option taking a registry name of `kind`, its help "`what`: a, b (= c) or d"."""
    from gpen_cli.weights.registry import names

    def describe() -> str:
        by_entry: dict[str, list[str]] = {}
        for alias, entry in names(kind).items():
            by_entry.setdefault(entry, []).append(alias)
        listed = [
            f"{spelled[0]} (= {', '.join(spelled[1:])})" if len(spelled) > 1 else spelled[0]
            for spelled in by_entry.values()
        ]
        return f"{what}: {', '.join(listed[:-1])} or {listed[-1]}." if listed else f"{what}."

    choices = RegistryChoice(lambda: list(names(kind)))
    # `default=...` as typer.Option gives it: under Annotated, a default is read as a flag name.
    return LiveHelpOption(describe, default=..., click_type=choices, metavar="NAME", **options)
