"""GPEN generators and ParseNet as checked ONNX files: what `gpen export` writes and what
the onnxruntime runtime runs.

Each export is run at once in ONNX Runtime (CPU) on seeded random faces, at a batch size
other than the one traced (so the batch axis is proven free), and compared with the torch
network: GPEN with the official (reference) formulation, ParseNet with facexlib's layers.
The largest absolute difference on the network's output is the figure reported; above
`TOLERANCE` the file is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gpen_cli.core.errors import GpenError
from gpen_cli.core.version import __version__
from gpen_cli.models import FullGenerator, copy_gpen
from gpen_cli.models.onnx import onnx_file
from gpen_cli.models.onnx.cache import cache_key, cached_export
from gpen_cli.models.onnx.graph import ParsingHead, gpen_graph
from gpen_cli.models.onnx.runtime import SessionModule, run, session

# Largest absolute difference from torch on outputs in [-1, 1] (GPEN) or on logits
# (ParseNet): FP32 files differ by float rounding (about 1e-5); FP16 weights by their
# rounding (measured below 3e-3 on GPEN-BFR-256 layouts; see docs/benchmarks.md).
TOLERANCE = {False: 1e-3, True: 1e-2}
CHECK_BATCH = 2  # faces per check: not the traced batch of 1
CHECK_SEED = 2024
PARSING_SIZE = 512


@dataclass(frozen=True)
class Interface:
    """The names of an exported file's input and output (the rest is common to all)."""

    input_name: str
    output_name: str


# "gpen": this tool's names. "facefusion": what facefusion's face_enhancer feeds GPEN-BFR
# files (facefusion/processors/modules/face_enhancer/core.py: it fills the input named
# "input" with 1×3×S×S float32 RGB in [-1, 1] and reads the first output the same way).
LAYOUTS = {"gpen": Interface("face", "restored"), "facefusion": Interface("input", "output")}


class ExportCheckError(GpenError):
    """The exported file does not compute what the torch network computes."""


@dataclass
class Exported:
    """A serialised, checked ONNX file and what was measured of it."""

    data: bytes
    difference: float  # largest |ONNX Runtime − torch| on the check batch
    metadata: dict[str, str] = field(default_factory=dict)


def random_faces(batch: int, size: int, seed: int = CHECK_SEED) -> torch.Tensor:
    """Seeded uniform noise in [-1, 1], N×3×S×S: every input value the range allows."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


def largest_difference(data: bytes, reference: nn.Module, faces: torch.Tensor) -> float:
    """max |ORT(data)(faces) − reference(faces)|, both in FP32 on the CPU."""
    with torch.inference_mode():
        expected = reference(faces).numpy()
    got = run(session(data), faces.numpy())
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def checked(exported: Exported, half: bool, what: str) -> Exported:
    """`exported` when within tolerance, else ExportCheckError saying by how much."""
    limit = TOLERANCE[half]
    exported.metadata["max_abs_diff_vs_torch"] = f"{exported.difference:.3g}"
    if not exported.difference <= limit:  # NaN fails too
        raise ExportCheckError(
            f"{what}: the ONNX file differs from PyTorch by {exported.difference:.3g} "
            f"(more than {limit:g}); nothing was written"
        )
    return exported


def gpen_metadata(name: str, size: int, layout: str, half: bool) -> dict[str, str]:
    interface = LAYOUTS[layout]
    return {
        "model": name,
        "kind": "gpen",
        "size": str(size),
        "layout": f"NCHW, input '{interface.input_name}' N×3×{size}×{size} float32",
        "output": f"'{interface.output_name}' N×3×{size}×{size} float32 (clip to [-1, 1])",
        "input_range": "[-1, 1] (pixel / 255 * 2 - 1)",
        "channel_order": "RGB",
        "interface": layout,
        "weights": "float16" if half else "float32",
        "producer": f"gpen-cli {__version__}",
    }


def export_checked(
    graph: nn.Module,
    reference: nn.Module | None,
    size: int,
    interface: Interface,
    metadata: dict[str, str],
    half: bool,
) -> Exported:
    """`graph` traced to ONNX and, unless `reference` is None, checked against it."""
    proto = onnx_file.trace_to_onnx(
        graph, random_faces(1, size), interface.input_name, interface.output_name
    )
    if half:
        proto = onnx_file.fp16_weights(proto)
    exported = Exported(onnx_file.to_bytes(proto), float("nan"), metadata)
    if reference is not None:
        faces = random_faces(CHECK_BATCH, size)
        exported.difference = largest_difference(exported.data, reference, faces)
        checked(exported, half, metadata["model"])
    onnx_file.set_metadata(proto, exported.metadata)
    exported.data = onnx_file.to_bytes(proto)
    return exported


def gpen_onnx(
    model: FullGenerator, name: str, *, layout: str = "gpen", half: bool = False, check=True
) -> Exported:
    """A GPEN generator (any formulation, device or dtype) as an ONNX file, checked against
    the official formulation unless `check` is False."""
    reference = (
        copy_gpen(model, fast=False, device=torch.device("cpu"), dtype=torch.float32)
        if check
        else None
    )
    metadata = gpen_metadata(name, model.size, layout, half)
    return export_checked(gpen_graph(model), reference, model.size, LAYOUTS[layout], metadata, half)


def parsenet_metadata(name: str, half: bool) -> dict[str, str]:
    size = PARSING_SIZE
    return {
        "model": name,
        "kind": "parsing",
        "size": str(size),
        "layout": f"NCHW, input 'face' N×3×{size}×{size} float32",
        "output": f"'logits' N×19×{size}×{size} float32 (argmax: CelebAMask-HQ labels)",
        "input_range": "[-1, 1] (pixel / 255 * 2 - 1)",
        "channel_order": "RGB",
        "interface": "gpen",
        "weights": "float16" if half else "float32",
        "producer": f"gpen-cli {__version__}",
    }


def parsenet_onnx(
    network: nn.Module, name: str = "parsenet", *, half: bool = False, check: bool = True
) -> Exported:
    """facexlib's ParseNet (eval mode) as an ONNX file of its segmentation head, checked
    against facexlib's own layers unless `check` is False."""
    head = ParsingHead(copy.deepcopy(network).float().cpu()).eval().requires_grad_(False)
    metadata = parsenet_metadata(name, half)
    interface = Interface("face", "logits")
    return export_checked(head, head if check else None, PARSING_SIZE, interface, metadata, half)


def gpen_session(model: FullGenerator, device: torch.device) -> SessionModule:
    """`model` exported, checked, and loaded in ONNX Runtime on `device`'s provider; the
    checked file is kept in the user cache folder, so later starts skip the export."""
    description = {"kind": "gpen", "layout": "gpen", **model.config}
    data = cached_export(
        f"gpen-{model.size}",
        cache_key(model, description),
        lambda: gpen_onnx(model, "GPEN").data,
    )
    return SessionModule(data, device, size=model.size)


def parsenet_session(network: nn.Module, device: torch.device) -> SessionModule:
    """ParseNet's segmentation head exported, checked and loaded (see gpen_session)."""
    key = cache_key(network, {"kind": "parsing", "size": PARSING_SIZE})
    return SessionModule(
        cached_export("parsenet", key, lambda: parsenet_onnx(network).data), device
    )
