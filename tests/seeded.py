"""Network weights the suite regenerates from seeds, and the hash that proves they are the same.

The official references in tests/data/official were made (scripts/make_official_references.py)
by the official GPEN code from exactly these tensors. Each recipe builds the network with the
project's own builders, in the order the official classes create and initialise parameters,
so the same seed gives the same numbers; `state_dict_hash` fingerprints them. If torch's random
generator ever changes, the hash check fails naming that cause, rather than the comparisons
failing against weights the references were never made from.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent / "data"
OFFICIAL = DATA / "official"
MANIFEST = OFFICIAL / "manifest.json"

# The GPEN-BFR-256 layout (channel multiplier 1, narrow 0.5): the pipeline references' generator.
PIPELINE_GPEN = {"size": 256, "channel_multiplier": 1, "narrow": 0.5}
# A generator small enough to compare tensor for tensor with the official forward.
TINY_GPEN = {"size": 64, "channel_multiplier": 1, "narrow": 0.125}
TINY_INPUT_SHAPE = (2, 3, 64, 64)


def _perturbed(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Every parameter plus seeded noise, so that no layer keeps its trivial initialisation."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter += torch.randn_like(parameter) * scale
    return module


def pipeline_gpen_state() -> dict[str, torch.Tensor]:
    """GPEN-BFR-256 layout, seed 256, parameters + N(0, 0.05²), stored in FP16."""
    from gpen_cli.models import build_gpen

    torch.manual_seed(256)
    model = _perturbed(build_gpen(**PIPELINE_GPEN), 0.05)
    return {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def parsenet_state() -> dict[str, torch.Tensor]:
    """ParseNet (facexlib's, GPEN's architecture), seed 1; its last layer drawn wide (seed 2)
    so that faces split into several labels, as with real weights; stored in FP16."""
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(1)
    network = ParseNet(
        512, 512, 32, 64, 19, norm_type="bn", relu_type="LeakyReLU", ch_range=[32, 256]
    )
    torch.manual_seed(2)
    weight = network.out_mask_conv.conv2d.weight
    with torch.no_grad():
        weight.copy_(torch.randn_like(weight) * 3 / math.sqrt(weight[0].numel()))
    return {k: v.half() if v.is_floating_point() else v for k, v in network.state_dict().items()}


def tiny_gpen_state() -> dict[str, torch.Tensor]:
    """GPEN-64 (channel multiplier 1, narrow 0.125), seed 64, parameters + N(0, 0.05²), FP32."""
    from gpen_cli.models import build_gpen

    torch.manual_seed(64)
    return _perturbed(build_gpen(**TINY_GPEN), 0.05).state_dict()


def tiny_input() -> torch.Tensor:
    """2×3×64×64 RGB in [-1, 1], seed 65."""
    generator = torch.Generator().manual_seed(65)
    return torch.rand(TINY_INPUT_SHAPE, generator=generator) * 2 - 1


def label_blocks():
    """A 512 px label map with every ParseNet label (0-18) in 32 px blocks, inside and at the
    border: the paste mask of each label, in one picture."""
    import numpy as np

    y, x = np.mgrid[:512, :512]
    return ((y // 32) * 16 + x // 32) % 19


RECIPES: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    "GPEN-BFR-256.pth": pipeline_gpen_state,
    "parsing_parsenet.pth": parsenet_state,
    "GPEN-tiny-64.pth": tiny_gpen_state,
}


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor's name, dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()


def tensor_hash(tensor: torch.Tensor) -> str:
    return state_dict_hash({"tensor": tensor})


def stored_hashes() -> dict[str, str]:
    return json.loads(MANIFEST.read_text())["hashes"]


def regenerate(name: str) -> dict[str, torch.Tensor]:
    """The seeded tensors `name` names, checked against the hash the references were made with."""
    state = RECIPES[name]()
    expected = stored_hashes()[name]
    actual = state_dict_hash(state)
    if actual != expected:
        raise AssertionError(
            f"the seeded weights {name} regenerate differently (sha256 {actual[:12]}…, the "
            f"references in {OFFICIAL} were made from {expected[:12]}…): torch "
            f"{torch.__version__}'s random generator or the builder's parameter order changed; "
            "rerun scripts/make_official_references.py --official PATH_TO_GPEN_CHECKOUT"
        )
    return state


def write(name: str, folder: Path) -> Path:
    """The seeded weights `name` saved in the official checkpoint format under `folder`."""
    path = folder / name
    torch.save(regenerate(name), path)
    return path


def write_retinaface(folder: Path) -> Path:
    """A RetinaFace MobileNet-0.25 with seeded random weights (seed 25), saved as the published
    detection_mobilenet0.25_Final.pth is: torch's legacy format, at its exact size (the registry
    checks it), the difference zero bytes after the pickle, which torch.load never reads.

    It finds no face in the test photos: for the tests where the detector runs but what it
    finds does not matter (thin strips, faceless films, files that must be present). No
    reference was made from it, so no hash is kept.
    """
    import io

    from facexlib.detection.retinaface import RetinaFace

    from gpen_cli.weights.registry import get_spec

    spec = get_spec("retinaface-mobile")
    torch.manual_seed(25)
    network = RetinaFace(network_name="mobile0.25", half=False, device="cpu")
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert spec.size_bytes is not None and len(data) <= spec.size_bytes, len(data)
    path = folder / spec.filename
    path.write_bytes(data + bytes(spec.size_bytes - len(data)))
    return path
