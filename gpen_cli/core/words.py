"""Counts in words, one way everywhere: "1 face", "2 faces", "0 faces"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """`number` and `noun`, the noun plural unless the number is exactly 1 (`plural` when
    adding "s" is wrong)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
