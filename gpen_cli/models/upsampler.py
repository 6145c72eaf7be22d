"""Load a super-resolution checkpoint for background upscaling, whatever its architecture.

spandrel recognises the architecture from the tensors alone (ESRGAN/RRDBNet in the old and
new key layouts, GPEN's own 32-feature RealESRNet included, Real-ESRGAN Compact/SRVGG,
SwinIR, HAT, DAT, OmniSR, SPAN and more), so any single-image SR file a user already has
works without a table of architectures here. The file itself is read by our weights-only
reader (spandrel's own loader uses a restricted unpickler instead): an upsampler is an
untrusted checkpoint like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from gpen_cli.core.errors import CheckpointError
from gpen_cli.weights.checkpoints import read_state_dict, seeded


@dataclass
class SrNet:
    """A loaded SR network and what running it needs to know."""

    module: nn.Module
    scale: int
    architecture: str
    multiple: int  # input sides are reflect-padded up to a multiple of this
    supports_half: bool
    supports_bfloat16: bool


def input_multiple(architecture: str, scale: int, declared: int) -> int:
    """The side multiple the input is padded to.

    For RRDBNet the official RealESRNet pads to 2 at scale 2 and to 4 at scale 1 (what its
    pixel-unshuffle needs), not to spandrel's more cautious 4: other padding changes the
    pixels near the bottom and right edges, and the official output is the target.
    """
    if architecture == "ESRGAN":
        return {1: 4, 2: 2}.get(scale, 1)
    return max(1, declared)


def load_sr_net(path: Path) -> SrNet:
    """The SR network in `path`; one line naming the file when it is not one."""
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    state = read_state_dict(Path(path), "super-resolution checkpoint")
    try:
        descriptor = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError:
        raise CheckpointError(
            f"{path}: not a super-resolution network (spandrel recognises no architecture "
            "in it); the background upsampler must be one, such as RealESRNet or Real-ESRGAN"
        ) from None
    except Exception as exc:  # a recognised architecture whose tensors do not fit it
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot build the upsampler ({text[:160]})") from None
    architecture = descriptor.architecture.name
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR":
        raise CheckpointError(
            f"{path}: a {architecture} {descriptor.purpose} model, not a background "
            "super-resolution network (the background upsampler must be one, e.g. RealESRNet)"
        )
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise CheckpointError(
            f"{path}: a {architecture} model for {descriptor.input_channels}-channel images; "
            "the background upsampler must take colour (3-channel) photos"
        )
    return SrNet(
        module=descriptor.model,
        scale=int(descriptor.scale),
        architecture=architecture,
        multiple=input_multiple(
            architecture, int(descriptor.scale), descriptor.size_requirements.multiple_of
        ),
        supports_half=bool(descriptor.supports_half),
        supports_bfloat16=bool(descriptor.supports_bfloat16),
    )


def random_rrdbnet(seed: int, scale: int, num_feat: int, num_blocks: int) -> nn.Module:
    """An RRDBNet (spandrel's ESRGAN) of that shape with seeded random weights, in the key
    layout `load_sr_net` recognises (a registry random_init)."""
    from spandrel.architectures.ESRGAN import ESRGAN

    with seeded(seed):
        return ESRGAN(
            num_filters=num_feat,
            num_blocks=num_blocks,
            scale=scale,
            shuffle_factor=4 // scale if scale < 4 else None,
        )
