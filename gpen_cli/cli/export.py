"""`gpen export`: a GPEN model or ParseNet as an ONNX file, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpen_cli.cli.common import WeightsDirOption, fail, one_line_errors, say

SourceArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME|FILE",
        help="GPEN-BFR-256/512/1024/2048, parsenet, or a GPEN or ParseNet checkpoint file.",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="The .onnx file to write.", show_default=False)
]
HalfOption = Annotated[
    bool, typer.Option("--half", help="Store the weights in FP16 (half the size).")
]
LayoutOption = Annotated[
    str,
    typer.Option(
        "--layout",
        help="Input/output names: gpen (face → restored) or facefusion (input → output, "
        "what facefusion's face enhancer feeds GPEN-BFR files).",
    ),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")]


def register(app: typer.Typer) -> None:
    """Add the `export` command to `app`."""
    app.command("export")(export)


@one_line_errors
def export(
    source: SourceArgument,
    output: OutputOption,
    half: HalfOption = False,
    layout: LayoutOption = "gpen",
    overwrite: OverwriteOption = False,
    weights_dir: WeightsDirOption = None,
) -> None:
    """Export a GPEN model or ParseNet to ONNX, checked against PyTorch.

    $ gpen export GPEN-BFR-512 -o gpen_bfr_512.onnx

    $ gpen export GPEN-BFR-256 -o gpen_bfr_256.onnx --layout facefusion

    $ gpen export parsenet -o parsenet.onnx --half

    The file has opset 17, a free batch axis and no custom operators; its
    metadata names the model, size, layout, input range and channel order
    (NCHW RGB in [-1, 1]). Before writing, the file is run in ONNX Runtime
    (CPU) on random faces and compared with PyTorch: it is refused when the
    largest difference exceeds 1e-3 (1e-2 with --half).
    """
    from gpen_cli.export import export_source, write_export
    from gpen_cli.models.onnx.networks import TOLERANCE, ExportCheckError

    if output.suffix.lower() != ".onnx":
        raise fail(f"{output}: the output must be a .onnx file")
    if output.exists() and not overwrite:
        raise fail(f"{output}: exists (--overwrite to replace it)")
    try:
        exported = export_source(source, weights_dir, layout=layout, half=half)
    except ExportCheckError as exc:
        raise fail(str(exc), code=1) from None
    write_export(exported, output, overwrite=overwrite)
    size_mb = len(exported.data) / 1e6
    say(
        "[green]exported[/]",
        f"{output} ({size_mb:.1f} MB): ONNX Runtime vs PyTorch, largest difference "
        f"{exported.difference:.2g} (limit {TOLERANCE[half]:g})",
    )
