"""The `gpen` command: one module per sub-command, each adding itself to the app."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="gpen",
    help="Restore faces in old, blurry or compressed photos with GPEN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; the order is the order of `gpen --help`.
_COMMAND_MODULES = ["restore", "batch", "video", "weights", "doctor", "bench"]

# Command modules import nothing heavy at load time (torch, OpenCV...): `gpen --help` stays
# instant and `gpen doctor` still runs when a broken install makes those imports fail.
for _name in _COMMAND_MODULES:
    importlib.import_module(f"gpen_cli.cli.{_name}").register(app)


def main() -> None:
    app()
