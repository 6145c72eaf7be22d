"""The networks' own code: the GPEN generator in the official formulation (gpen.py), its fast
kernels (ops.py) and loading (loading.py); ParseNet's fused CPU head (parsenet.py) and the
Winograd convolution it runs its wide layers with (winograd.py); the upsampler (upsampler.py)
and the ONNX sessions (onnx/)."""

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
