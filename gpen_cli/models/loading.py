"""Load a GPEN checkpoint safely and let its tensors say which generator it is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from gpen_cli.core.errors import CheckpointError
from gpen_cli.models.gpen import FullGenerator, channel_table
from gpen_cli.models.ops import FastFullGenerator
from gpen_cli.weights.checkpoints import (
    StateDict,
    check_declared_size,
    describe_mismatch,
    read_checkpoint,
    seeded,
    unwrap_state_dict,
)

# Bounds a GPEN configuration can have: the published ones are sizes 256-2048, multiplier
# 1-2, narrow 0.5-1, style_dim 512, n_mlp 8. Wider values come only from a forged file.
_SIZES = tuple(2**power for power in range(6, 12))  # 64 ... 2048, the channel table's range
_MAX_CHANNEL_MULTIPLIER = 4
_MAX_STYLE_DIM = 1024
_MAX_MLP = 16


def infer_config(state_dict: StateDict, origin: str = "checkpoint") -> dict:
    """Size, channel_multiplier, narrow, style_dim and n_mlp from the tensors' shapes."""
    try:
        encoder_layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"ecd(\d+)\.", k))}
        style_layers = {
            int(m.group(1))
            for k in state_dict
            if (m := re.match(r"generator\.style\.(\d+)\.weight", k))
        }
        channels_at_4 = state_dict["generator.input.input"].shape[1]
        channels_at_64 = state_dict["generator.convs.6.conv.weight"].shape[1]
        style_dim = state_dict["generator.style.1.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(
            f"{origin}: not a GPEN generator (missing tensor {exc.args[0]}; "
            f"found e.g. {sorted(state_dict)[:3]})"
        ) from None
    narrow = channels_at_4 / 512
    config = {
        "size": 2 ** (len(encoder_layers) + 1),
        "style_dim": int(style_dim),
        "n_mlp": len(style_layers),
        "channel_multiplier": max(1, round(channels_at_64 / (256 * max(narrow, 1e-9)))),
        "narrow": narrow,
    }
    check_config(config, origin)
    return config


def check_config(config: dict, origin: str) -> None:
    """Refuse a configuration no GPEN checkpoint has, before anything of its size is built."""
    problems = []
    if config["size"] not in _SIZES:
        problems.append(f"face size {config['size']} (expected {_SIZES[0]}-{_SIZES[-1]})")
    if not 0 < config["narrow"] <= 1 or min(channel_table(1, config["narrow"]).values()) < 1:
        problems.append(f"{round(config['narrow'] * 512)} channels at 4 px (expected 8-512)")
    if not 1 <= config["channel_multiplier"] <= _MAX_CHANNEL_MULTIPLIER:
        problems.append(f"channel multiplier {config['channel_multiplier']}")
    if not 1 <= config["style_dim"] <= _MAX_STYLE_DIM:
        problems.append(f"style dimension {config['style_dim']}")
    if not 1 <= config["n_mlp"] <= _MAX_MLP:
        problems.append(f"{config['n_mlp']} mapping layers")
    if problems:
        raise CheckpointError(
            f"{origin}: not a GPEN generator: its tensors describe {', '.join(problems)}"
        )


def build_gpen(
    size: int, channel_multiplier: int = 2, narrow: float = 1.0, *, fast: bool = False, **config
) -> FullGenerator:
    """A GPEN generator with random weights (the published configs are in the registry).

    `fast` picks the formulation once, here: the official layers (`gpen.py`, the reference
    `--exact` runs) or the fast kernels (`ops.py`). Both take the same state dict.
    """
    generator = FastFullGenerator if fast else FullGenerator
    return generator(size, channel_multiplier=channel_multiplier, narrow=narrow, **config)


def random_gpen(seed: int, size: int, **layout) -> FullGenerator:
    """A GPEN generator of that layout with seeded random weights (a registry random_init)."""
    with seeded(seed):
        return build_gpen(size, **layout)


def load_gpen(
    source: str | Path | Mapping, device: str | torch.device = "cpu", *, fast: bool = False
) -> FullGenerator:
    """A ready-to-run GPEN generator from a checkpoint path or a state dict.

    The architecture is read off the tensors, so no size or width flags are needed; the
    weights load with `strict=True`. Returns the model in eval mode on `device`, float32,
    in the formulation `fast` names (see `build_gpen`).

    Nothing is allocated at the checkpoint's size before its shapes are known to fit: the
    configuration is bounded, the tensors must fit in their file, and the layout is compared
    on the meta device (shapes only) before the real generator is built.
    """
    state_dict, config = read_gpen(source)
    model = build_gpen(**config, fast=fast)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    return model.eval().requires_grad_(False).to(device)


def copy_gpen(
    model: FullGenerator, *, fast: bool, device: torch.device, dtype: torch.dtype
) -> FullGenerator:
    """A new generator with `model`'s weights in the formulation, device and dtype asked for.

    Built on the meta device and given copies of the tensors, so no random initialisation
    is paid for and `model` is left exactly as it was (no shared storage either).
    """
    with torch.device("meta"):
        twin = build_gpen(**model.config, fast=fast)
    state = {
        key: value.detach().to(device, dtype if value.is_floating_point() else None, copy=True)
        for key, value in model.state_dict().items()
    }
    twin.load_state_dict(state, strict=True, assign=True)
    return twin.eval().requires_grad_(False)


def read_gpen(source: str | Path | Mapping) -> tuple[StateDict, dict]:
    """A GPEN state dict and its configuration, checked to match without building the model."""
    origin = str(source) if isinstance(source, (str, Path)) else "state dict"
    raw = read_checkpoint(Path(source)) if isinstance(source, (str, Path)) else source
    state_dict = unwrap_state_dict(raw, origin, "GPEN generator")
    if isinstance(source, (str, Path)):
        check_declared_size(state_dict, Path(source))
    config = infer_config(state_dict, origin)
    try:
        with torch.device("meta"):
            skeleton = FullGenerator(**config)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{origin}: tensors describe no valid GPEN generator ({exc})"
        ) from None
    mismatch = describe_mismatch(skeleton, state_dict)
    if mismatch:
        raise CheckpointError(
            f"{origin}: not a GPEN generator of the inferred config {config}: {mismatch}"
        )
    return state_dict, config
