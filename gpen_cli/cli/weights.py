"""`gpen weights`: list, download, verify and locate the weights files the tool uses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from gpen_cli.cli.common import WeightsDirOption, console, fail, one_line_errors, say
from gpen_cli.core.errors import EXIT_SOME_FAILED, GpenError, message_of
from gpen_cli.weights import download, install, registry, store, verify

weights_app = typer.Typer(
    name="weights",
    help="List, download, add, verify and locate the weights files (GPEN, detectors, parsing).",
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
    folder, source = weights_folder(weights_dir)
    rows = []
    for spec in registry.MODELS.values():
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
                "url": download.source_url(spec),
                "description": spec.description,
            }
        )
    if as_json:
        _print_json({"weights_dir": str(folder), "source": source, "models": rows})
        return

    print_folder(folder, source)
    # Whole names at 80 columns: one space between columns, no borders, nothing wrapped.
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    for header in ("name", "kind", "here", "size", "file"):
        table.add_column(header, no_wrap=True, justify="right" if header == "size" else "left")
    for row in rows:
        mark = "[green]yes[/]" if row["present"] else "[dim]no[/]"
        size = _size(row["size_bytes"]) if row["present"] else f"[dim]{_size(row['size_bytes'])}[/]"
        table.add_row(row["name"], row["kind"], mark, size, row["file"])
    console.print(table)
    console.print(Text(f"Add a file you have with: {store.add_command(folder)}"), soft_wrap=True)


def weights_folder(weights_dir: Path | None) -> tuple[Path, str]:
    """The weights folder and what chose it; a folder given here is named by its flag."""
    folder, source = store.resolve_weights_dir_and_source(weights_dir)
    return folder, "--weights-dir" if source == store.EXPLICIT_SOURCE else source


def print_folder(folder: Path, source: str) -> None:
    """The weights folder and what chose it, the path on a line of its own (never cut)."""
    console.print(Text(f"Weights folder ({source}):"), highlight=False, soft_wrap=True)
    console.print(Text(f"  {folder}", style="bold"), highlight=False, soft_wrap=True)


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
        specs = list(registry.MODELS.values())
    elif names:
        specs = [registry.get_spec(name) for name in names]  # every name checked before any fetch
    else:
        raise fail("name one or more models (see `gpen weights list`), or pass --all")
    folder = store.resolve_weights_dir(weights_dir)
    if len(specs) == 1:
        problem = _download_one(specs[0], folder, force)
        if problem:
            raise fail(problem)
        return
    failures = []
    for spec in specs:  # every name is tried; each failure is said as it happens
        if problem := _download_one(spec, folder, force):
            failures.append(problem)
            say("[bold red]error:[/]", problem)
    if failures:
        raise fail(
            f"{len(failures)} of {len(specs)} downloads failed. Without internet, copy the "
            f"files from another machine and run: {store.add_command(folder)}"
        )


def _download_one(spec: registry.ModelSpec, folder: Path, force: bool) -> str:
    """Fetch one file, saying what was done; "" then, else the failure with its URL."""
    path = folder / spec.filename
    if path.is_file() and not force:
        console.print(
            Text(f"{spec.name}: already present at {path}"), highlight=False, soft_wrap=True
        )
        return ""
    try:
        path = download.download(spec, folder)
    except download.DownloadError as exc:
        return f"{spec.name}: {exc}"
    checked = "sha256 checked" if spec.sha256 else "sha256 recorded"
    size = _size(path.stat().st_size)
    console.print(
        Text(f"{spec.name}: saved {path} ({size}, {checked})"), highlight=False, soft_wrap=True
    )
    return ""


@weights_app.command("add")
@one_line_errors
def add_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Weights files you have (copied, downloaded by hand).", metavar="FILE"),
    ],
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            show_default=False,
            help="The model the file is (see `gpen weights list`). Default: told by its file "
            "name, its hash or its layout.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a different file already installed.")
    ] = False,
    weights_dir: WeightsDirOption = None,
) -> None:
    """Check weights files and install them in the weights folder: the offline install.

    Each file is checked (its published sha256 where there is one, its structure
    otherwise), then copied under its registry name; the file given is left as it is.

    $ gpen weights add ~/Downloads/GPEN-BFR-512.pth

    $ gpen weights add model.pth --as GPEN-BFR-256

    Exit 1 when a file is refused.
    """
    if as_name is not None and len(files) > 1:
        raise fail("--as names the model of one file; add the files one at a time")
    if as_name is not None:
        registry.get_spec(as_name)  # a bad name is a usage error before any file is read
    refused = [str(file) for file in files if not _add_one(file, as_name, force, weights_dir)]
    if refused:
        raise fail(f"{len(refused)} of {len(files)} files refused", EXIT_SOME_FAILED)


def _add_one(file: Path, name: str | None, force: bool, weights_dir: Path | None) -> bool:
    try:
        added = install.add(file, weights_dir, name=name, force=force)
    except GpenError as exc:
        say("[bold red]error:[/]", message_of(exc))
        return False
    done = "already installed at" if added.already else "installed"
    console.print(
        Text(f"{added.spec.name}: {done} {added.path} (checked: {added.check})"),
        highlight=False,
        soft_wrap=True,
    )
    return True


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
    specs = [registry.get_spec(name) for name in names] if names else registry.MODELS.values()
    results = [verify.verify(spec.name, weights_dir) for spec in specs]
    folder, source = weights_folder(weights_dir)
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
                        "check": result.check,
                        "detail": result.detail,
                    }
                    for result in results
                ],
            }
        )
    else:
        print_folder(folder, source)
        for result in results:
            print_verified(result)
    if bad:
        command = store.fetch_command(bad, folder, force=True)
        raise fail(
            f"missing or damaged: {', '.join(bad)}. Fetch again with: {command}", EXIT_SOME_FAILED
        )


def print_verified(result: verify.VerifyResult) -> None:
    """One line a model (name, status, size, the check it passed), then its detail wrapped
    at spaces under it: at 80 columns nothing is cut, no name or hash broken."""
    style = _STATUS_STYLE[result.status]
    size = _size(result.size_bytes) if result.present else ""
    line = Text(f"{result.name:<20}")
    rest = f"{size:>8}  {result.check}".rstrip()
    line.append(f"{result.status:<9}" if rest else result.status, style=style)
    line.append(rest)
    console.print(line, highlight=False, soft_wrap=True)
    width = max(console.width, 40)
    for part in textwrap.wrap(result.detail, width - 4, break_long_words=False,
                              break_on_hyphens=False):  # fmt: skip
        console.print(Text(f"    {part}"), highlight=False, soft_wrap=True)


@weights_app.command("path")
@one_line_errors
def path_command(
    name: Annotated[
        str, typer.Argument(help="Model name (see `gpen weights list`).", metavar="NAME")
    ],
    weights_dir: WeightsDirOption = None,
) -> None:
    """Print where the file for NAME is, or would be once downloaded (for scripts)."""
    typer.echo(str(store.weight_path(name, weights_dir)))
