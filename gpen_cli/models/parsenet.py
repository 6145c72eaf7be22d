"""ParseNet's segmentation head in fused oneDNN convolutions, for the CPU.

facexlib's ParseNet computes every layer as reflection pad → convolution → batch norm →
leaky ReLU, and a residual block's shortcut pads (or upsamples and pads) the block's input a
second time. At 512 px each of those steps is a full pass over a 32–128 channel activation.
The head here computes the same function with fewer passes:

- batch norm (eval mode: an affine map per channel) folded into the convolution's weights;
- the leaky ReLU and the residual addition done by the convolution that produces them
  (oneDNN post-ops, as inductor's CPU fusions use them);
- a block's input padded once for both of its branches;
- where a block upsamples, no upsampled copy at all: nearest-neighbour ×2, reflection padding
  and a 3×3 convolution are, output pixel by output pixel, four 2×2 convolutions of the
  small input edge-padded by one pixel (each output phase sees two distinct rows and two
  distinct columns, so the 3×3 taps that fall on the same input pixel are summed). That is
  4 multiplications where there were 9, in the decoder's layers, which carry 43 % of the
  network's arithmetic at 512 px.

Folding reorders one multiplication and the phases sum taps before multiplying, so the
logits differ from facexlib's by rounding only (about 1e-6); the argmax labels and the
official paste mask come out the same. The head reads the network's own modules and refuses,
with `None` from `fused_head`, any layer it does not reproduce exactly, so a variant of the
architecture runs facexlib's code instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gpen_cli.models.winograd import WinogradConv

_pointwise = torch.ops.mkldnn._convolution_pointwise
_pointwise_binary = torch.ops.mkldnn._convolution_pointwise.binary


class Unfusable(ValueError):
    """A layer the fused head does not compute exactly as the network does."""


def pad(x: torch.Tensor) -> torch.Tensor:
    """ParseNet's padding: one reflected pixel on each side (its convolutions are 3×3)."""
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


def pad_edges(x: torch.Tensor) -> torch.Tensor:
    """One repeated edge pixel on each side: what reflection padding of the ×2 nearest upsampled
    input reads, seen from the small input (its reflected row is a copy of the edge row)."""
    return F.pad(x, (1, 1, 1, 1), mode="replicate")


# Input channels from which a stride-1 layer runs as Winograd's F(4×4, 3×3) in FP32: with
# fewer its transforms cost more than the multiplications save (docs/benchmarks.md).
WINOGRAD_MIN_INPUTS = 128

# Output phases of a ×2 upsampled convolution: (row, column) parity, in weight order.
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """A 3×3 kernel (O×I×3×3) applied after ×2 nearest upsampling, as four 2×2 kernels
    (4O×I×2×2, phase-major) over the small input: an even output row reads input rows i-1
    (tap 0) and i (taps 1 and 2), an odd one rows i (taps 0 and 1) and i+1 (tap 2); the
    same for columns."""

    def halves(w: torch.Tensor, dim: int) -> list[torch.Tensor]:
        taps = w.unbind(dim)
        even = torch.stack([taps[0], taps[1] + taps[2]], dim)
        odd = torch.stack([taps[0] + taps[1], taps[2]], dim)
        return [even, odd]

    rows = halves(weight, 2)
    return torch.cat([halves(rows[row], 3)[column] for row, column in PHASES])


def interleave(phases: torch.Tensor, channels: int) -> torch.Tensor:
    """The four phase outputs (N×4C×(H+1)×(W+1), phase-major) as one N×C×2H×2W image: phase
    (row, column) holds the outputs of that parity, read from its window at that offset."""
    n, _, height, width = phases.shape
    height, width = height - 1, width - 1
    out = torch.empty(
        n, channels, 2 * height, 2 * width, dtype=phases.dtype, memory_format=torch.channels_last
    )
    for index, (row, column) in enumerate(PHASES):
        window = phases[:, index * channels : (index + 1) * channels]
        out[:, :, row::2, column::2] = window[:, :, row : row + height, column : column + width]
    return out


@dataclass(frozen=True)
class FusedConv:
    """One facexlib `ConvLayer` (reflection pad, 3×3 convolution, batch norm folded in, and
    the leaky ReLU `slope`), or a residual added to its result instead."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    slope: float | None
    # The layer upsamples its input ×2 first: it runs as four 2×2 phases on the small input
    # padded by `pad_edges`, and `channels` is its number of outputs.
    upsampled: bool = False
    channels: int = 0
    # The same layer as F(4×4, 3×3) (models/winograd.py), used on inputs of whole tiles.
    winograd: WinogradConv | None = None

    @classmethod
    def of(cls, layer: nn.Module, dtype: torch.dtype) -> FusedConv:
        conv = layer.conv2d
        if not layer.use_pad or tuple(conv.kernel_size) != (3, 3):
            raise Unfusable("a convolution that is not a reflect-padded 3×3")
        if tuple(conv.padding) != (0, 0) or tuple(conv.dilation) != (1, 1) or conv.groups != 1:
            raise Unfusable("a padded, dilated or grouped convolution")
        weight = conv.weight.detach().float()
        bias = torch.zeros(weight.shape[0]) if conv.bias is None else conv.bias.detach().float()
        scale, shift = _affine_of(layer.norm, weight.shape[0])
        weight = weight * scale[:, None, None, None]
        bias = bias * scale + shift
        upsampled, channels = _upsamples(layer), weight.shape[0]
        if upsampled:  # summed in FP32, then cast: a BF16 kernel is rounded once
            if conv.stride[0] != 1:
                raise Unfusable("a strided convolution of an upsampled input")
            weight, bias = phase_weights(weight), bias.repeat(len(PHASES))
        pays = _winograd_pays(weight, conv.stride[0], upsampled, dtype)
        winograd = WinogradConv(weight, bias) if pays else None
        return cls(
            weight=weight.to(dtype).contiguous(memory_format=torch.channels_last),
            bias=bias.to(dtype),
            stride=conv.stride[0],
            slope=_slope_of(layer.relu),
            upsampled=upsampled,
            channels=channels,
            winograd=winograd,
        )

    def __call__(self, padded: torch.Tensor, residual: torch.Tensor | None = None):
        """The layer on its padded input (`pad`, or `pad_edges` where it upsamples);
        `residual` is added to the result (not to an upsampling layer's)."""
        if self.winograd is not None and self.winograd.fits(padded):
            return self.winograd(padded, self.slope, residual)
        geometry = ([0, 0], [self.stride, self.stride], [1, 1], 1)
        if residual is not None:
            assert not self.upsampled, "a residual is added to a layer at its input's size"
            return _pointwise_binary(
                padded, residual, self.weight, self.bias, *geometry, "add", None, None, [], None
            )
        if self.slope is None:
            out = _pointwise(padded, self.weight, self.bias, *geometry, "none", [], "")
        else:
            activation = [self.slope]
            out = _pointwise(
                padded, self.weight, self.bias, *geometry, "leaky_relu", activation, ""
            )
        return interleave(out, self.channels) if self.upsampled else out


def _winograd_pays(weight: torch.Tensor, stride: int, upsampled: bool, dtype: torch.dtype) -> bool:
    """Whether F(4×4, 3×3) beats oneDNN's direct convolution for this layer on the CPU: FP32
    (in BF16 its rounding would be far larger), stride 1, input channels enough to pay for
    its transforms, and not an upsampling layer (its four 2×2 phases already take 4
    multiplications an output, and Winograd over them was slower: docs/benchmarks.md)."""
    wide = weight.shape[1] >= WINOGRAD_MIN_INPUTS
    return dtype == torch.float32 and stride == 1 and not upsampled and wide


def _affine_of(norm_layer: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A facexlib `NormLayer` as a per-channel scale and shift (batch norm in eval mode)."""
    norm = norm_layer.norm
    if isinstance(norm, nn.Identity):
        return torch.ones(channels), torch.zeros(channels)
    if not isinstance(norm, nn.BatchNorm2d) or norm.training or norm.running_var is None:
        raise Unfusable("a normalisation other than batch norm in eval mode")
    scale = torch.rsqrt(norm.running_var.float() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach().float()
    shift = -norm.running_mean.float() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().float()
    return scale, shift


def _slope_of(relu_layer: nn.Module) -> float | None:
    """A facexlib `ReluLayer`'s leaky slope, None when it passes values through."""
    func = relu_layer.func
    if isinstance(func, nn.Identity):
        return None
    if isinstance(func, nn.LeakyReLU):
        return float(func.negative_slope)
    raise Unfusable(f"an activation the fused head does not compute ({type(func).__name__})")


class FusedBlock:
    """One facexlib `ResidualBlock`: shortcut + conv2(conv1(x)), its input padded once for
    both branches (edge-padded at its own size where the block upsamples: both branches then
    run as phases, see `phase_weights`)."""

    def __init__(self, block: nn.Module, dtype: torch.dtype):
        shortcut = block.shortcut_func
        self.shortcut = FusedConv.of(shortcut, dtype) if isinstance(shortcut, nn.Module) else None
        self.conv1 = FusedConv.of(block.conv1, dtype)
        self.conv2 = FusedConv.of(block.conv2, dtype)
        self.upsamples = self.conv1.upsampled
        if self.shortcut is None and self.upsamples:
            raise Unfusable("an upsampling block without a shortcut convolution")
        if self.shortcut is not None and (
            self.shortcut.slope is not None or self.shortcut.upsampled != self.upsamples
        ):
            raise Unfusable("a shortcut that is not a plain convolution of the block's input")
        if self.conv1.stride != 1 or self.conv2.upsampled or self.conv2.slope is not None:
            raise Unfusable("a residual block of another shape")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_edges(x) if self.upsamples else pad(x)
        identity = x if self.shortcut is None else self.shortcut(padded)
        return self.conv2(pad(self.conv1(padded)), residual=identity)


def _upsamples(layer: nn.Module) -> bool:
    """Whether a facexlib `ConvLayer` upsamples its input (its `scale_func` is a lambda)."""
    return layer.scale_func(torch.zeros(1, 1, 1, 1)).shape[-1] == 2


class FusedSegmentationHead:
    """ParseNet's encoder → body (+ skip) → decoder → mask convolution: N×3×S×S to N×19×S×S
    logits, for channels-last CPU tensors of the network's dtype."""

    def __init__(self, network: nn.Module, dtype: torch.dtype):
        first, *encoder = network.encoder
        self.first = FusedConv.of(first, dtype)
        if self.first.upsampled or self.first.stride != 1:
            raise Unfusable("a first layer of another shape")
        self.encoder = _blocks(encoder, dtype)
        self.body = _blocks(network.body, dtype)
        self.decoder = _blocks(network.decoder, dtype)
        self.mask = FusedConv.of(network.out_mask_conv, dtype)
        if self.mask.upsampled or self.mask.stride != 1:
            raise Unfusable("a mask layer of another shape")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        features = self.first(pad(batch))
        for block in self.encoder:
            features = block(features)
        x = features
        for block in self.body:
            x = block(x)
        x = x.add_(features)  # facexlib's `feat + body(feat)`: the same sum, in place
        for block in self.decoder:
            x = block(x)
        return self.mask(pad(x))


def _blocks(blocks: Sequence[nn.Module], dtype: torch.dtype) -> list[FusedBlock]:
    return [FusedBlock(block, dtype) for block in blocks]


def fused_head(network: nn.Module, dtype: torch.dtype) -> Callable | None:
    """The fused head of a facexlib ParseNet in eval mode, or None where it cannot be used:
    no oneDNN in this torch, BF16 asked of a CPU whose oneDNN has no BF16 convolution (AVX2
    alone: it refuses the call), or a layer it does not reproduce."""
    if not torch.backends.mkldnn.is_available():
        return None
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    try:
        return FusedSegmentationHead(network, dtype)
    except (Unfusable, AttributeError):
        return None
