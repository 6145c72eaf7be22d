"""`gpen weights`: list, download, verify and locate the weights files the tool uses."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gpen_cli import weights
from gpen_cli.cli.common import WeightsDirOption, console, fail, one_line_errors
from gpen_cli.errors import EXIT_SOME_FAILED

weights_app = typer.Typer(
    name="weights",
    help="List, download, verify and locate the weights files (GPEN, detectors, parsing).",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")
]


def register(app: typer.Typer) -> None:
    """Add the `weights` command group to `app`."""
    app.add_typer(weights_app, name="weights")


def _print_json(payload: Any) -> None:
    # typer.echo, not rich: no wrapping or colour codes in what scripts parse.
    typer.echo(json.dumps(payload, indent=2))


def _size(size_bytes: int | None) -> str:
    return decimal(size_bytes) if size_bytes is not None else "?"


@weights_app.command("list")
@one_line_errors
def list_command(weights_dir: WeightsDirOption = None, as_json: JsonOption = False) -> None:
    """List every model the tool can fetch, and whether its file is in the weights folder."""
    folder, source = weights.resolve_weights_dir_and_source(weights_dir)
    rows = []
    for spec in weights.MODELS.values():
        path = folder / spec.filename
        present = path.is_file()
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "present": present,
                "file": spec.filename,
                "path": str(path),
                "size_bytes": path.stat().st_size if present else spec.size_bytes,
                "url": weights.source_url(spec),
                "description": spec.description,
            }
        )
    if as_json:
        _print_json({"weights_dir": str(folder), "source": source, "models": rows})
        return

    console.print(
        f"Weights folder: [bold]{escape(str(folder))}[/] (from {escape(source)})",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("name", "kind", "present", "size", "file")
    for row in rows:
        mark = "[green]yes[/]" if row["present"] else "[dim]no[/]"
        size = _size(row["size_bytes"]) if row["present"] else f"[dim]{_size(row['size_bytes'])}[/]"
        table.add_row(row["name"], row["kind"], mark, size, row["file"])
    console.print(table)


@weights_app.command("download")
@one_line_errors
def download_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to fetch (see `gpen weights list`).", metavar="NAME", show_default=False
        ),
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Fetch every model in the registry.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Fetch again even when the file is present (replaced only on success)."
        ),
    ] = False,
    weights_dir: WeightsDirOption = None,
) -> None:
    """Download weights files, checking their sha256 where it is known.

    A file lands under its final name only once complete and checked.

    Set $GPEN_WEIGHTS_BASE_URL to fetch from a mirror (the file name is appended to it).
    """
    if all_models:
        specs = list(weights.MODELS.values())
    elif names:
        specs = [weights.get_spec(name) for name in names]  # every name checked before any fetch
    else:
        raise fail("name one or more models (see `gpen weights list`), or pass --all")
    folder = weights.resolve_weights_dir(weights_dir)
    for spec in specs:
        path = folder / spec.filename
        if path.is_file() and not force:
            console.print(
                Text(f"{spec.name}: already present at {path}"), highlight=False, soft_wrap=True
            )
            continue
        path = weights.download(spec, folder)
        checked = "sha256 checked" if spec.sha256 else "sha256 recorded"
        size = _size(path.stat().st_size)
        console.print(
            Text(f"{spec.name}: saved {path} ({size}, {checked})"), highlight=False, soft_wrap=True
        )


_STATUS_STYLE = {"ok": "green", "mismatch": "bold red", "unknown": "yellow", "missing": "dim"}


@weights_app.command("verify")
@one_line_errors
def verify_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to check. Default: every model.", metavar="NAME", show_default=False
        ),
    ] = None,
    weights_dir: WeightsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hash the weights files and compare them with the known or recorded sha256.

    Exit 1 when a present file does not match, or when a model named here is missing.

    Files without a published checksum are compared with the one recorded at download time.
    """
    specs = [weights.get_spec(name) for name in names] if names else weights.MODELS.values()
    results = [weights.verify(spec.name, weights_dir) for spec in specs]
    folder = weights.resolve_weights_dir(weights_dir)
    bad = [r.name for r in results if r.failed or (names and not r.present)]
    if as_json:
        _print_json(
            {
                "weights_dir": str(folder),
                "ok": not bad,
                "models": [
                    {
                        "name": result.name,
                        "path": str(result.path),
                        "present": result.present,
                        "size_bytes": result.size_bytes,
                        "status": result.status,
                        "sha256": result.actual_sha256,
                        "expected_sha256": result.expected_sha256,
                        "checksum_source": result.checksum_source,
                        "detail": result.detail,
                    }
                    for result in results
                ],
            }
        )
    else:
        table = Table("name", "status", "size", "checked against", "detail")
        for result in results:
            style = _STATUS_STYLE[result.status]
            table.add_row(
                result.name,
                f"[{style}]{result.status}[/]",
                _size(result.size_bytes) if result.present else "",
                result.checksum_source or "",
                Text(result.detail),
            )
        console.print(table)
    if bad:
        command = weights.fetch_command(bad, folder, force=True)
        raise fail(
            f"missing or damaged: {', '.join(bad)}. Fetch again with: {command}", EXIT_SOME_FAILED
        )


@weights_app.command("path")
@one_line_errors
def path_command(
    name: Annotated[
        str, typer.Argument(help="Model name (see `gpen weights list`).", metavar="NAME")
    ],
    weights_dir: WeightsDirOption = None,
) -> None:
    """Print where the file for NAME is, or would be once downloaded (for scripts)."""
    typer.echo(str(weights.weight_path(name, weights_dir)))
