"""What a missing weights file's message offers instead, so a machine without internet still
has a way forward: the detector whose weights are already here, or Lanczos for upscaling."""

from __future__ import annotations

from gpen_cli.core.config import ConfigError, RestoreConfig
from gpen_cli.core.errors import GpenError, WeightsMissingError
from gpen_cli.weights.registry import MODELS
from gpen_cli.weights.store import resolve_weights_dir_and_source


def installed(kind: str, config: RestoreConfig) -> list[str]:
    """The registry models of `kind` whose weights file is in the configured weights folder."""
    folder, _ = resolve_weights_dir_and_source(config.weights_dir)
    return [
        spec.name
        for spec in MODELS.values()
        if spec.kind == kind and (folder / spec.filename).is_file()
    ]


def way_forward(kind: str, config: RestoreConfig, exc: WeightsMissingError) -> GpenError:
    """`exc` with the offline alternative to the missing file of a `kind` network, as the
    setting that chose it; other kinds have none and keep `exc` as it is."""
    message = str(exc).rstrip(".")
    if kind == "detector":
        here = [name for name in installed("detector", config) if name != config.detector.value]
        if not here:
            return exc
        choices = " or ".join(here)
        weights = "their weights are" if len(here) > 1 else "its weights are"
        return ConfigError("detector", f"{message}; or choose {choices}: {weights} here.")
    if kind == "upsampler":
        return ConfigError(
            "bg_upsampler", f"{message}; or set it to none to upscale with Lanczos, offline."
        )
    return exc
