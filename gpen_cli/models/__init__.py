"""GPEN generator: the official formulation (gpen.py), its fast kernels (ops.py), loading."""

from gpen_cli.models.gpen import FullGenerator
from gpen_cli.models.loading import build_gpen, copy_gpen, infer_config, load_gpen
from gpen_cli.models.ops import FastFullGenerator

__all__ = [
    "FastFullGenerator",
    "FullGenerator",
    "build_gpen",
    "copy_gpen",
    "infer_config",
    "load_gpen",
]
