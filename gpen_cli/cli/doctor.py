"""`gpen doctor`: find what is wrong with this install, each finding with a one-line fix."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gpen_cli.cli.common import (
    WeightsDirOption,
    console,
    err_console,
    setup_logging,
    shell_lines,
)
from gpen_cli.core.errors import EXIT_OK, EXIT_SOME_FAILED

_STATUS_STYLE = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red"}

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the results as JSON on stdout, and nothing else there: schema_version, "
        "ok, weights_dir and checks (key, name, status pass|warn|fail, detail, fix).",
    ),
]

# Raised whenever a key of `gpen doctor --json` changes meaning or goes.
DOCTOR_SCHEMA_VERSION = 2  # 2: cache_writable gone; weights_present checks the defaults


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what libraries print, from Python or from C, to stderr: stdout carries only the
    table or the JSON."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 to protect
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def print_findings(results: list) -> None:
    """One paragraph a check (status, name, detail) wrapped at spaces to the terminal, then
    each fix on a line of its own.

    A detail carries paths and file names: it is wrapped between words only, so none is
    ever cut (a word longer than the line gets a line of its own). A fix is often a
    command: it is broken between its words by a backslash (`fix_lines`), so the lines copied
    together paste as that one command.
    """
    from gpen_cli.doctor import PASS, summary_line

    width = max(len(result.name) for result in results)
    columns = max(console.width, 40)
    for result in results:
        head = f"{result.status}  {result.name:<{width}}  {result.detail}"
        lines = textwrap.wrap(
            head, columns, subsequent_indent=" " * 6, break_long_words=False,
            break_on_hyphens=False,
        )  # fmt: skip
        first = Text(lines[0][:4], style=_STATUS_STYLE[result.status]) + Text(lines[0][4:])
        console.print(first, soft_wrap=True, highlight=False)
        for line in lines[1:]:
            console.print(Text(line), soft_wrap=True, highlight=False)
    to_fix = [result for result in results if result.status != PASS and result.fix]
    if to_fix:
        console.print("\n[bold]To fix:[/]", highlight=False)
    for result in to_fix:
        console.print(Text(f"{result.name}:"), highlight=False)
        for line in fix_lines(result.fix, columns):
            console.print(Text(line), soft_wrap=True, highlight=False)
    console.print(summary_line(results), highlight=False)


def fix_lines(fix: str, width: int) -> list[str]:
    """`fix` indented, in lines of at most `width` characters where its words allow, each
    but the last ending in " \\": broken only between shell words (quotes kept whole)."""
    lexer = shlex.shlex(fix, posix=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:  # not shell syntax (an unbalanced quote in prose): one line, whole
        return [f"  {fix}"]
    return shell_lines(words, width)


def _weights_folder(weights_dir: Path | None) -> tuple[Path, str]:
    """The weights folder the commands use; where a bad config file or variable hides it
    (the "config file" check says so), the user data folder."""
    from gpen_cli.cli.weights import weights_folder
    from gpen_cli.core import settings
    from gpen_cli.core.errors import GpenError

    try:
        return weights_folder(weights_dir)
    except GpenError:
        return settings.user_weights_dir(), "the user data folder: the config is unusable"


def register(app: typer.Typer) -> None:
    """Add the `doctor` command to `app`."""
    app.command("doctor")(doctor)


def doctor(as_json: JsonOption = False, weights_dir: WeightsDirOption = None) -> None:
    """Check numpy, OpenCV, torch, the GPU, the weights, and restore a test photo.

    $ gpen doctor

    $ gpen doctor --json --weights-dir ./weights

    Exit status 1 when any check fails; warnings alone exit 0.
    """
    # Imported here so `gpen --help` stays fast; the doctor package itself is light.
    from gpen_cli.doctor import CHECKS, FAIL, DoctorContext, run_check

    setup_logging(quiet=as_json)
    folder, source = _weights_folder(weights_dir)
    context = DoctorContext(folder, source)
    results = []
    with _stdout_to_stderr(), err_console.status("") as spinner:
        for index, check in enumerate(CHECKS):
            spinner.update(f"checking {check.name} ({index + 1}/{len(CHECKS)})")
            results.append(run_check(check, context))

    if as_json:
        document = {
            "schema_version": DOCTOR_SCHEMA_VERSION,
            "ok": not any(result.status == FAIL for result in results),
            "weights_dir": str(folder),
            "checks": [result.to_dict() for result in results],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_findings(results)
    raise typer.Exit(EXIT_SOME_FAILED if any(r.status == FAIL for r in results) else EXIT_OK)
