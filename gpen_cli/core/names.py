"""Matching what a user typed against the names the tool knows."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import Enum
from typing import TypeVar

from gpen_cli.core.errors import GpenError

ChoiceT = TypeVar("ChoiceT", bound=Enum)


def match_name(typed: str, known: Iterable[str], what: str) -> str:
    """The known name `typed` means, ignoring case; else a one-line error with a suggestion.

    "gpen-bfr-512" is GPEN-BFR-512; "retinaface-mobil" is refused with "did you mean
    retinaface-mobile?" and the full list, so a typo costs one look, not a search.
    """
    names = list(known)
    by_lower = {name.lower(): name for name in names}
    found = by_lower.get(str(typed).lower())
    if found is not None:
        return found
    close = difflib.get_close_matches(str(typed).lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"did you mean {by_lower[close[0]]}? " if close else ""
    raise GpenError(f"unknown {what} {typed!r}; {hint}known: {', '.join(names)}")


def parse_choice(choices: type[ChoiceT], typed: str, what: str) -> ChoiceT:
    """The member of the string enum `choices` that `typed` names, ignoring case.

    Library callers pass plain strings; this refuses a bad one before any model loads.
    """
    return choices(
        match_name(str(getattr(typed, "value", typed)), [c.value for c in choices], what)
    )
