"""The `gpen` command: one module per sub-command, each adding itself to the app."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from gpen_cli.core.version import __version__

app = typer.Typer(
    name="gpen",
    help="Restore faces in old, blurry or compressed photos with GPEN.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # sub-commands inherit it
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"gpen-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Restore faces in old, blurry or compressed photos with GPEN."""


# Each module defines `register(app)`; the order is the order of `gpen --help`.
_COMMAND_MODULES = [
    "restore",
    "batch",
    "review",
    "video",
    "weights",
    "config",
    "doctor",
    "bench",
    "export",
]

# Command modules import nothing heavy at load time (torch, OpenCV...): `gpen --help` stays
# instant and `gpen doctor` still runs when a broken install makes those imports fail.
for _name in _COMMAND_MODULES:
    importlib.import_module(f"gpen_cli.cli.{_name}").register(app)


def main() -> None:
    """The `gpen` command: its process policy first (see gpen_cli/cli/process.py), then the
    app, where an error nobody foresaw is one line naming the file that holds its trace."""
    from gpen_cli.cli.crash import unexpected_errors_in_one_line
    from gpen_cli.cli.process import apply_memory_policy

    apply_memory_policy()
    with unexpected_errors_in_one_line():
        app()
