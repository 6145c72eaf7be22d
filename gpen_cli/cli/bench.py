"""`gpen bench`: how fast each stage runs here, for several forward configurations."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import (
    console,
    err_console,
    in_flags,
    one_line_errors,
    print_wrapped,
    setup_logging,
)
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError

BenchModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        show_default=False,
        help="GPEN model name or checkpoint file. A name whose weights are absent is timed "
        "with seeded random weights of its config. Default: GPEN-BFR-<size>, else GPEN-BFR-512.",
        rich_help_panel=opt.PIPELINE,
    ),
]
SizeOption = Annotated[
    int | None,
    typer.Option(
        "--size",
        show_default=False,
        help="Pick the registry model of this face size (256, 512, 1024, 2048).",
        rich_help_panel=opt.PIPELINE,
    ),
]
BatchSizesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--batch-size",
        "-b",
        metavar="N",
        show_default=False,
        help="Batch sizes to compare: -b 1 4 8, -b 1,4,8 or -b 1 -b 4. "
        "Default: 16 on CUDA, 4 on CPU.",
        rich_help_panel=opt.SPEED,
    ),
]
ExtraBatchSizes = Annotated[
    list[str] | None,
    typer.Argument(
        hidden=True, metavar="N", show_default=False, help="More batch sizes after --batch-size."
    ),
]
ImagesOption = Annotated[
    Path | None,
    typer.Option(
        "--images",
        show_default=False,
        help="Folder of photos to restore. Default: the shared benchmark photos "
        "($GPEN_SHARED_DIR), else scikit-image's astronaut.",
        rich_help_panel=opt.PIPELINE,
    ),
]
RepeatsOption = Annotated[
    int, typer.Option("--repeats", min=1, help="Timed runs per configuration (medians are shown).")
]
FacesOption = Annotated[
    int | None,
    typer.Option(
        "--faces",
        min=1,
        show_default=False,
        help="Random crops per run when timing the forward alone. Default: the largest batch size.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the results as JSON on stdout only.")
]
MarkdownOption = Annotated[
    bool, typer.Option("--markdown", help="Print a markdown table (for a README) on stdout.")
]

# The results are what bench is for: -q leaves out the rest, not them.
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No spinner or warnings: the results and errors.")
]


def parse_batch_sizes(values: list[str]) -> list[int]:
    """ "1 4 8", "1,4,8" and repeated options all give [1, 4, 8]."""
    sizes = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or int(part) < 1:
                raise GpenError(f"--batch-size: {part!r} is not a positive whole number")
            sizes.append(int(part))
    return sizes


def print_table(report) -> None:
    from gpen_cli.bench.table import describe, table_rows

    header, rows = table_rows(report, detailed=False)
    table = Table(title="gpen bench", show_edge=False)
    for index, column in enumerate(header):
        first = index == 0
        table.add_column(column, justify="left" if first else "right", no_wrap=first)
    for row in rows:
        table.add_row(*map(Text, row))
    console.print(table)
    for line in describe(report):
        print_wrapped(line)


def _json_safe(value):
    """NaN (no face found) becomes null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


@one_line_errors
@opt.pipeline_options(leave_out=("model", "batch_size", "aligned", "keep_resized", *opt.CHOOSING))
def bench(
    more_batch_sizes: ExtraBatchSizes = None,
    model: BenchModelOption = None,
    size: SizeOption = None,
    batch_size: BatchSizesOption = None,
    images: ImagesOption = None,
    repeats: RepeatsOption = 3,
    faces: FacesOption = None,
    as_json: JsonOption = False,
    as_markdown: MarkdownOption = False,
    quiet: QuietOption = False,
    *,
    config: RestoreConfig,
) -> None:
    """Time every stage of the pipeline (detect, GPEN, mask, paste…) per configuration.

    $ gpen bench --size 256 -b 1 4 --detector retinaface-mobile

    $ gpen bench --images ./photos -b 4 --half --markdown

    The faithful path (--exact, FP32, batch 1, eager) is always measured
    first; speed-ups are relative to it. Every other configuration is the
    pipeline `gpen restore` runs with the same options, at each batch size.
    """
    from gpen_cli.bench.run import run_bench
    from gpen_cli.bench.table import markdown

    setup_logging(quiet or as_json or as_markdown)
    sizes = parse_batch_sizes((batch_size or []) + (more_batch_sizes or []))
    if model is None and size is None:  # bench's own --model: the user's default model too
        model = opt.user_default("model")
    status = err_console.status("Benchmarking…", spinner="dots") if not quiet else nullcontext()
    with status:

        def on_step(step: str) -> None:
            status.update(f"Benchmarking {step}…")

        report = run_bench(
            config,
            model=model,
            size=size,
            batch_sizes=sizes,
            images=images,
            repeats=repeats,
            faces=faces,
            on_step=None if quiet else on_step,
        )
    report.notes = [in_flags(note) for note in report.notes]
    if as_json:
        typer.echo(json.dumps(_json_safe(report.to_dict()), indent=2))
    elif as_markdown:
        typer.echo(markdown(report), nl=False)
    else:
        print_table(report)


def register(app: typer.Typer) -> None:
    app.command()(bench)
