"""Errors a user can act on: the CLI prints them as one line, never a traceback."""

from __future__ import annotations


class GpenError(Exception):
    """Base class: the message is complete and says what to do."""


class InputError(GpenError):
    """An input file cannot be used (unreadable, not an image, too small...)."""


class WeightsMissingError(GpenError):
    """A weights file is absent and could not be fetched."""


class CheckpointError(GpenError):
    """A checkpoint file is not a usable GPEN generator (or is unsafe to load)."""


class OutputError(GpenError):
    """An output cannot be written (exists without --overwrite, would replace an input...)."""


# Exit codes shared by every command, documented in the README.
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
