"""Errors a user can act on: the CLI prints them as one line, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

Namer = Callable[[str], str]


class Phrase(str):
    """A message that names settings the caller chose, each written `setting` in `template`.

    As a str it says each setting by its own name, as the Python API spells it ("out.png
    exists; pass overwrite to replace it"); a front end says them in its own words with
    `words` (the command line: by flag, "pass --overwrite to replace it"). The library
    never names a command-line flag: only the command line knows them.
    """

    template: str
    settings: tuple[str, ...]

    def __new__(cls, template: str, *settings: str) -> Phrase:
        phrase = super().__new__(cls, _fill(template, settings, str))
        phrase.template, phrase.settings = str(template), settings
        return phrase

    def words(self, name: Namer) -> str:
        """The message with each setting said as `name` says it."""
        return _fill(self.template, self.settings, name)


def _fill(template: str, settings: tuple[str, ...], name: Namer) -> str:
    for setting in settings:
        template = template.replace(f"`{setting}`", name(setting))
    return template


def joined(*parts: str) -> str:
    """The parts as one message, a Phrase naming their settings when any of them is one."""
    phrases = [part for part in parts if isinstance(part, Phrase)]
    if not phrases:
        return "".join(parts)
    template = "".join(part.template if isinstance(part, Phrase) else part for part in parts)
    return Phrase(template, *dict.fromkeys(s for phrase in phrases for s in phrase.settings))


class GpenError(Exception):
    """Base class: the message is complete and says what to do. A message that names a
    setting is a Phrase (see `message_of`)."""


def message_of(exc: BaseException) -> str:
    """The exception's message: its Phrase when it names settings, so a front end can say
    them in its own words, else str(exc)."""
    if len(exc.args) == 1 and isinstance(exc.args[0], Phrase):
        return exc.args[0]
    return str(exc)


class InputError(GpenError):
    """An input file cannot be used (unreadable, not an image, too small...)."""


class WeightsMissingError(GpenError):
    """A weights file is absent and could not be fetched."""


class CheckpointError(GpenError):
    """A checkpoint file is not a usable GPEN generator (or is unsafe to load)."""


class OutputError(GpenError):
    """An output cannot be written (exists while overwrite is off, would replace an input...)."""


# Exit codes shared by every command, documented in the README.
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
