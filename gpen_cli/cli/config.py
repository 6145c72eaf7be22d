"""`gpen config`: the defaults the commands use, and where each comes from."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from gpen_cli.cli.common import console, one_line_errors

config_app = typer.Typer(
    name="config",
    help="Show the defaults of the pipeline options (config file, GPEN_* variables).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of lines.")]


def register(app: typer.Typer) -> None:
    """Add the `config` command group to `app`."""
    app.add_typer(config_app, name="config")


@config_app.command("show")
@one_line_errors
def show(as_json: JsonOption = False) -> None:
    """Print the value each pipeline option takes when no flag is given, and its source.

    A flag beats $GPEN_<KEY>, which beats the config file ($GPEN_CONFIG, else config.toml in
    the user config folder), which beats the built-in default. Keys are the long flags
    with underscores: model, detector, fidelity_weight, compile…
    """
    from gpen_cli.core import settings
    from gpen_cli.weights import store

    _, path, chosen_by = settings.file_settings()
    chosen = settings.effective()
    folder, folder_source = store.resolve_weights_dir_and_source(None)
    chosen["weights_dir"] = settings.Setting("weights_dir", folder, folder_source)
    if as_json:
        document = {
            "config_file": str(path),
            "config_file_exists": path.is_file(),
            "settings": {
                item.key: {"value": _plain(item.value), "source": item.source}
                for item in chosen.values()
            },
        }
        typer.echo(json.dumps(document, indent=2))
        return
    state = "" if path.is_file() else " (absent: the built-in defaults apply)"
    console.print(Text(f"Config file ({chosen_by}){state}:"), highlight=False, soft_wrap=True)
    console.print(Text(f"  {path}", style="bold"), highlight=False, soft_wrap=True)
    width = max(len(item.key) for item in chosen.values())
    for item in chosen.values():
        value = (
            "-"
            if item.value is None
            else json.dumps(item.value)
            if isinstance(item.value, bool)
            else _plain(item.value)
        )
        line = Text(f"{item.key:<{width}}  {value}  ")
        line.append(f"({_source(item.source, path)})", style="dim")
        console.print(line, highlight=False, soft_wrap=True)


def _plain(value: object) -> object:
    """A value as the config file writes it (null for "not set")."""
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _source(source: str, path: object) -> str:
    """The config file's path is printed once, above; each line says "config file"."""
    return source.replace(str(path), "config file")
