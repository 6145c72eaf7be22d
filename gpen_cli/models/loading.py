"""Load a GPEN checkpoint safely and let its tensors say which generator it is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from gpen_cli.checkpoints import StateDict, describe_mismatch, read_checkpoint, unwrap_state_dict
from gpen_cli.errors import CheckpointError
from gpen_cli.models.gpen import FullGenerator


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
    return {
        "size": 2 ** (len(encoder_layers) + 1),
        "style_dim": int(style_dim),
        "n_mlp": len(style_layers),
        "channel_multiplier": max(1, round(channels_at_64 / (256 * narrow))),
        "narrow": narrow,
    }


def build_gpen(
    size: int, channel_multiplier: int = 2, narrow: float = 1.0, **config
) -> FullGenerator:
    """A GPEN generator with random weights (the published configs are in the registry)."""
    return FullGenerator(size, channel_multiplier=channel_multiplier, narrow=narrow, **config)


def load_gpen(source: str | Path | Mapping, device: str | torch.device = "cpu") -> FullGenerator:
    """A ready-to-run GPEN generator from a checkpoint path or a state dict.

    The architecture is read off the tensors, so no size or width flags are needed; the
    weights load with `strict=True`. Returns the model in eval mode on `device`, float32.
    """
    origin = str(source) if isinstance(source, (str, Path)) else "state dict"
    raw = read_checkpoint(Path(source)) if isinstance(source, (str, Path)) else source
    state_dict = unwrap_state_dict(raw, origin, "GPEN generator")
    config = infer_config(state_dict, origin)
    try:
        model = FullGenerator(**config)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{origin}: tensors describe no valid GPEN generator ({exc})"
        ) from None
    mismatch = describe_mismatch(model, state_dict)
    if mismatch:
        raise CheckpointError(
            f"{origin}: not a GPEN generator of the inferred config {config}: {mismatch}"
        )
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    return model.eval().requires_grad_(False).to(device)
