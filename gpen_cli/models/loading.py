"""Load a GPEN checkpoint safely and let its tensors say which generator it is."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from gpen_cli.errors import CheckpointError
from gpen_cli.models.gpen import FullGenerator

# Dicts that trainers wrap a generator's state dict in, most specific first.
WRAPPER_KEYS = ("g_ema", "params_ema", "params", "state_dict", "model", "generator", "net_g")
MAX_LISTED = 4

StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: Path) -> Mapping:
    """Read a checkpoint file without running any pickled code.

    Checkpoints come from the internet: `weights_only=True` refuses anything but tensors
    and plain containers, so a file that tries to execute code is rejected, not run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError(
                f"{path}: reading .safetensors needs the safetensors package "
                "(pip install safetensors)"
            ) from None
        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if detail is None:
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint (corrupt or not a checkpoint)"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: the file asks to run {detail.group(1)} when unpickled; "
            "checkpoints may only hold tensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line})") from None


def unwrap_state_dict(obj: Mapping, origin: str = "checkpoint") -> StateDict:
    """Find the generator's tensors in the variants seen in the wild."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"{origin}: expected a dict of tensors, found {type(obj).__name__}"
            )
        if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
            break
        inner = next((obj[key] for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        if inner is None:
            raise CheckpointError(
                f"{origin}: no tensors found; top-level keys are {sorted(map(str, obj))[:8]}"
            )
        obj = inner
    return {re.sub(r"^(module\.)+", "", key): value for key, value in obj.items()}


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


def _describe_mismatch(model: FullGenerator, state_dict: StateDict) -> str:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} != {expected[k]}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != expected[k]
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            parts.append(f"{label}: {', '.join(items[:MAX_LISTED])}{more}")
    return "; ".join(parts)


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
    state_dict = unwrap_state_dict(raw, origin)
    config = infer_config(state_dict, origin)
    try:
        model = FullGenerator(**config)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{origin}: tensors describe no valid GPEN generator ({exc})"
        ) from None
    mismatch = _describe_mismatch(model, state_dict)
    if mismatch:
        raise CheckpointError(
            f"{origin}: not a GPEN generator of the inferred config {config}: {mismatch}"
        )
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    return model.eval().requires_grad_(False).to(device)
