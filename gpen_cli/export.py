"""What `gpen export` exports: a registry name or a checkpoint file, as a checked ONNX file."""

from __future__ import annotations

from pathlib import Path

from gpen_cli.core.errors import GpenError
from gpen_cli.io.atomic import write_atomically
from gpen_cli.models.onnx.networks import LAYOUTS, Exported, gpen_onnx, parsenet_onnx

EXPORTABLE = ("gpen", "parsing")


def export_source(
    source: str, weights_dir: Path | None = None, *, layout: str = "gpen", half: bool = False
) -> Exported:
    """The GPEN generator or ParseNet that `source` names (a registry name, fetched when
    absent, or a checkpoint file, recognised by its tensors) exported and checked."""
    from gpen_cli.weights.download import ensure_weight
    from gpen_cli.weights.registry import get_spec

    if layout not in LAYOUTS:
        raise GpenError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    path = Path(source)
    if path.is_file():
        kind, name = _kind_of_file(path), path.stem
    elif path.exists() or any(sep in source for sep in "/\\"):
        raise GpenError(f"{source}: not a file")
    else:
        spec = get_spec(source)
        if spec.kind not in EXPORTABLE:
            raise GpenError(f"{spec.name}: only GPEN models and parsenet can be exported")
        kind, name, path = spec.kind, spec.name, ensure_weight(spec.name, weights_dir)
    if kind == "parsing":
        if layout != "gpen":
            raise GpenError(f"{name}: the {layout} layout is for GPEN models only")
        from gpen_cli.stages.mask import load_parsenet

        return parsenet_onnx(load_parsenet(path), name, half=half)
    from gpen_cli.models import load_gpen

    return gpen_onnx(load_gpen(path), name, layout=layout, half=half)


def _kind_of_file(path: Path) -> str:
    """ "parsing" for ParseNet weights, else "gpen" (the GPEN loader then says what is wrong)."""
    from gpen_cli.stages.mask import is_parsenet

    return "parsing" if is_parsenet(path) else "gpen"


def write_export(exported: Exported, output: Path, *, overwrite: bool = False) -> None:
    """The checked file written atomically at `output` (never over an existing file
    unless `overwrite`)."""
    write_atomically(Path(output), exported.data, overwrite=overwrite)
