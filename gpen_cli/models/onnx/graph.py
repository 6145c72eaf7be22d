"""GPEN and ParseNet as graphs an ONNX exporter can trace: batch-size free, no in-place ops.

The official generator modulates a copy of the weights per face and runs a grouped
convolution with one group per face: the group count is the batch size, a constant an
exported graph cannot vary. The layers here use the other formulation of `ops.py`: the
style scales the input, one convolution with the shared weights serves the whole batch,
and demodulation scales its output. The function is the same (to float rounding); the
operations are plain ones (no `out=`, no in-place activations, no per-face loops) so the
traced graph is one set of ONNX operators whatever the batch.

GPEN draws no random noise: its "noise" inputs are the encoder's feature maps
(`NoiseInjection` concatenates them), so the exported graph is deterministic and has one
input, the face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpen_cli.models.gpen import (
    BLUR_KERNEL,
    DEMOD_EPS,
    Blur,
    ConstantInput,
    ConvLayer,
    FullGenerator,
    Generator,
    ModulatedConv2d,
    StyledConv,
    ToRGB,
    Upsample,
)
from gpen_cli.models.ops import FastEqualLinear


def fir_weight(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """The FIR kernel flipped (upfirdn2d convolves, conv2d correlates), once per channel."""
    kh, kw = kernel.shape
    return torch.flip(kernel, [0, 1]).expand(channels, 1, kh, kw).contiguous()


class GraphBlur(Blur):
    """The blur as a depthwise convolution with a weight fixed before export.

    Built from the input's channel count, the weight would be an expression the exporter
    cannot fold into a constant; `gpen_graph` calls `fix(channels)` on every blur instead.
    Its pads are always equal in GPEN (a 4-tap kernel after a 3×3 or transposed 3×3 conv).
    """

    def fix(self, channels: int) -> None:
        if self.pad[0] != self.pad[1]:
            raise ValueError(f"uneven blur padding {self.pad}")
        self.register_buffer("weight", fir_weight(self.kernel, channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=self.pad[0], groups=self.weight.shape[0])


class GraphUpsample(Upsample):
    """The RGB skip path's 2x upsampling as a depthwise transposed convolution.

    Zero insertion then correlation with the flipped kernel is a transposed convolution
    with stride 2 whose implicit padding is kh - 1 - pad0 on each side (1 for GPEN's).
    """

    def fix(self) -> None:
        """Its weight, from the loaded kernel (see `GraphBlur.fix`)."""
        weight = torch.flip(fir_weight(self.kernel, 3), [2, 3]).contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = len(BLUR_KERNEL) - 1 - self.pad[0]
        return F.conv_transpose2d(x, self.weight, stride=self.factor, padding=lead, groups=3)


class GraphModulatedConv2d(ModulatedConv2d):
    """conv(x · s, w) · d: the style scales the input, demodulation the output.

    `fix()` stores the convolution's weight in the layout the convolution takes and each
    (output, input) pair's energy Σ w² over the taps, so the file holds each weight once
    and no arithmetic on weights is left to run.
    """

    blur_type = GraphBlur
    linear_type = FastEqualLinear

    def fix(self) -> None:
        weight = self.weight[0].detach()
        layout = weight.transpose(0, 1) if self.upsample else weight
        self.register_buffer("conv_weight", layout.contiguous(), persistent=False)
        self.register_buffer("energy", weight.pow(2).sum([2, 3]).t().contiguous(), persistent=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = self.modulation(style) * self.scale
        scaled = x * style[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(scaled, self.conv_weight, stride=2))
        else:
            out = F.conv2d(scaled, self.conv_weight, padding=self.padding)
        if not self.demodulate:
            return out
        demod = torch.rsqrt(style.pow(2) @ self.energy + DEMOD_EPS)
        return out * demod[:, :, None, None]


class GraphStyledConv(StyledConv):
    conv_type = GraphModulatedConv2d


class GraphToRGB(ToRGB):
    upsample_type = GraphUpsample
    conv_type = GraphModulatedConv2d


class GraphConstantInput(ConstantInput):
    """The learned 4×4 map broadcast over the batch (an Expand, not a Tile by a constant)."""

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return self.input.expand(like.shape[0], -1, -1, -1)


class GraphConvLayer(ConvLayer):
    blur_type = GraphBlur


class GraphGenerator(Generator):
    linear_type = FastEqualLinear
    constant_type = GraphConstantInput
    styled_conv_type = GraphStyledConv
    to_rgb_type = GraphToRGB


class GraphFullGenerator(FullGenerator):
    """GPEN in the exportable formulation: the same parameters and state-dict keys."""

    fast = True
    generator_type = GraphGenerator
    conv_layer_type = GraphConvLayer
    linear_type = FastEqualLinear


def gpen_graph(model: FullGenerator) -> GraphFullGenerator:
    """A copy of `model`'s weights (FP32, CPU) in the exportable formulation, in eval mode."""
    with torch.device("meta"):
        twin = GraphFullGenerator(**model.config)
    state = {
        key: value.detach().to("cpu", torch.float32, copy=True)
        for key, value in model.state_dict().items()
    }
    twin.load_state_dict(state, strict=True, assign=True)
    _fix_filters(twin)
    return twin.eval().requires_grad_(False)


def _fix_filters(model: GraphFullGenerator) -> None:
    """Give every blur and upsampling its weight (see `GraphBlur`)."""
    for module in model.modules():
        if isinstance(module, GraphUpsample | GraphModulatedConv2d):
            module.fix()
        if isinstance(module, GraphConvLayer) and isinstance(module[0], GraphBlur):
            module[0].fix(module[1].weight.shape[1])
        elif isinstance(module, GraphModulatedConv2d) and module.upsample:
            module.blur.fix(module.out_channel)


class ParsingHead(nn.Module):
    """facexlib ParseNet's segmentation head alone: N×3×512×512 → N×19×512×512 logits.

    The network also predicts a restored image, which GPEN's pipeline throws away; the
    exported file leaves it out.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        net = self.network
        features = net.encoder(batch)
        return net.out_mask_conv(net.decoder(features + net.body(features)))
