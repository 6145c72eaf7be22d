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
  network's arithmetic at 512 px; such a block's two branches read the same input, so their
  phases are one convolution;
- in FP32, the layers wide enough to pay for it by Winograd's minimal filtering
  (models/winograd.py): F(4×4, 3×3) for the stride-1 3×3 layers, F(3×3, 2×2) for the
  phases' 2×2 kernels;
- where a layer writes its output pixels itself (Winograd, the phases' interleaving), it
  writes them into the next layer's padded input, and only the border is filled after.

Folding reorders one multiplication, the phases sum taps before multiplying and Winograd
adds inputs before multiplying, so the logits differ from facexlib's by rounding only; the
argmax labels and the official paste mask come out the same. The head reads the network's
own modules and refuses, with `None` from `fused_head`, any layer it does not reproduce
exactly, so a variant of the architecture runs facexlib's code instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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


# Input channels from which a stride-1 layer runs by Winograd in FP32 (F(4×4, 3×3), or
# F(3×3, 2×2) for the upsampling phases): with fewer its transforms cost more than the
# multiplications save (docs/benchmarks.md).
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


def interleave(
    phases: torch.Tensor,
    channels: int,
    out: torch.Tensor | None = None,
    slope: float | None = None,
) -> torch.Tensor:
    """The four phase outputs (N×4C×(H+1)×(W+1), phase-major) as one N×C×2H×2W image: phase
    (row, column) holds the outputs of that parity, read from its window at that offset. The
    image goes to `out` where given (a view, such as the inside of a padded buffer), and a
    leaky ReLU of `slope` is applied on the way."""
    n, _, height, width = phases.shape
    height, width = height - 1, width - 1
    if out is None:
        shape = (n, channels, 2 * height, 2 * width)
        out = torch.empty(shape, dtype=phases.dtype, memory_format=torch.channels_last)
    for index, (row, column) in enumerate(PHASES):
        window = phases[:, index * channels : (index + 1) * channels]
        window = window[:, :, row : row + height, column : column + width]
        pixels = out[:, :, row::2, column::2]
        if slope is None:
            pixels.copy_(window)
        else:
            torch.ops.aten.leaky_relu.out(window, slope, out=pixels)
    return out


def padded_empty(like: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """An N×C×(H+2)×(W+2) channels-last buffer for a layer to write its H×W output into
    (`inside`) and `reflect_border` to pad: the next layer's input without a padded copy."""
    n = like.shape[0]
    return torch.empty(
        n, channels, height + 2, width + 2, dtype=like.dtype, memory_format=torch.channels_last
    )


def inside(padded: torch.Tensor) -> torch.Tensor:
    """The unpadded H×W view of an N×C×(H+2)×(W+2) buffer."""
    return padded[:, :, 1:-1, 1:-1]


def reflect_border(padded: torch.Tensor) -> torch.Tensor:
    """Fills the one-pixel border of a padded buffer from its inside, as `pad` does (rows,
    then whole columns, so the corners reflect both ways); H and W at least 2."""
    padded[:, :, 0, 1:-1] = padded[:, :, 2, 1:-1]
    padded[:, :, -1, 1:-1] = padded[:, :, -3, 1:-1]
    padded[:, :, :, 0] = padded[:, :, :, 2]
    padded[:, :, :, -1] = padded[:, :, :, -3]
    return padded


@dataclass(frozen=True)
class FusedConv:
    """One facexlib `ConvLayer` (reflection pad, 3×3 convolution, batch norm folded in, and
    the leaky ReLU `slope`), or a residual added to its result instead."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    slope: float | None
    # The layer upsamples its input ×2 first: it runs as four 2×2 phases on the small input
    # padded by `pad_edges` (its weight holds the four phases' kernels).
    upsampled: bool = False
    channels: int = 0  # the layer's output channels
    # The same layer by Winograd (models/winograd.py): on inputs of whole tiles, or on the
    # phases' input padded to whole tiles.
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
        # An upsampling layer's Winograd is built for both branches of its block (`beside`).
        pays = not upsampled and _winograd_pays(weight, conv.stride[0], dtype)
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

    def __call__(
        self, padded: torch.Tensor, residual: torch.Tensor | None = None, pad_output: bool = False
    ) -> torch.Tensor:
        """The layer on its padded input; `residual` is added to the result. With
        `pad_output` the result comes padded for the next layer: where Winograd writes the
        pixels itself, into a padded buffer, instead of copied by `pad`. (An upsampling
        layer runs as `phases` and `interleave`.)"""
        assert not self.upsampled, "an upsampling layer runs as its phases"
        if self.winograd is not None and self.winograd.fits(padded):
            if not pad_output:
                return self.winograd(padded, self.slope, residual)
            buffer = padded_empty(padded, self.channels, *self.winograd.output_size(padded))
            self.winograd(padded, self.slope, residual, inside(buffer))
            return reflect_border(buffer)
        out = self._direct(padded, residual)
        return pad(out) if pad_output else out

    def _direct(self, padded: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        """The layer as oneDNN's convolution, its leaky ReLU or residual addition fused."""
        geometry = ([0, 0], [self.stride, self.stride], [1, 1], 1)
        if residual is not None:
            return _pointwise_binary(
                padded, residual, self.weight, self.bias, *geometry, "add", None, None, [], None
            )
        if self.slope is None:
            return _pointwise(padded, self.weight, self.bias, *geometry, "none", [], "")
        activation = [self.slope]
        return _pointwise(padded, self.weight, self.bias, *geometry, "leaky_relu", activation, "")

    def phases(self, x: torch.Tensor) -> torch.Tensor:
        """An upsampling layer's four phase outputs for its small input (N×4O×(H+1)×(W+1),
        phase-major), before its activation, which `interleave` applies."""
        height, width = x.shape[-2:]
        if self.winograd is None:
            geometry = ([0, 0], [1, 1], [1, 1], 1)
            return _pointwise(pad_edges(x), self.weight, self.bias, *geometry, "none", [], "")
        # Whole tiles: edge pixels repeated further down and right give outputs not read.
        tile = self.winograd.algorithm.tile
        rows, columns = -(height + 1) % tile, -(width + 1) % tile
        padded = F.pad(x, (1, 1 + columns, 1, 1 + rows), mode="replicate")
        return self.winograd(padded)[:, :, : height + 1, : width + 1]

    def beside(self, other: FusedConv) -> FusedConv:
        """The upsampling layers `self` and `other`, which read the same input, as one: its
        phases are this layer's, then the other's (`FusedBlock` interleaves them apart)."""
        assert self.upsampled and other.upsampled and self.channels == other.channels
        weight, bias = torch.cat([self.weight, other.weight]), torch.cat([self.bias, other.bias])
        pays = _winograd_pays(weight, 1, weight.dtype)
        winograd = WinogradConv(weight.float(), bias.float()) if pays else None
        weight = weight.contiguous(memory_format=torch.channels_last)
        return replace(self, weight=weight, bias=bias, slope=None, winograd=winograd)


def _winograd_pays(weight: torch.Tensor, stride: int, dtype: torch.dtype) -> bool:
    """Whether Winograd (F(4×4, 3×3), or F(3×3, 2×2) for the upsampling phases' 2×2 kernels)
    beats oneDNN's direct convolution for this layer on the CPU: FP32 (in BF16 its rounding
    would be far larger), stride 1, and input channels enough to pay for its transforms
    (docs/benchmarks.md)."""
    wide = weight.shape[1] >= WINOGRAD_MIN_INPUTS
    return dtype == torch.float32 and stride == 1 and wide


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
        # An upsampling block's two branches convolve the same input: as one convolution.
        self.branches = self.shortcut.beside(self.conv1) if self.upsamples else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.branches is not None:
            return self._upsampling(x)
        padded = pad(x)
        identity = x if self.shortcut is None else self.shortcut(padded)
        return self.conv2(self.conv1(padded, pad_output=True), residual=identity)

    def _upsampling(self, x: torch.Tensor) -> torch.Tensor:
        """Both branches' phases in one convolution; the shortcut's interleaved as the
        residual, conv1's activated and interleaved into conv2's padded input."""
        phases = self.branches.phases(x)
        channels, split = self.conv1.channels, phases.shape[1] // 2
        identity = interleave(phases[:, :split], channels)
        buffer = padded_empty(x, channels, *identity.shape[-2:])
        interleave(phases[:, split:], channels, inside(buffer), self.conv1.slope)
        return self.conv2(reflect_border(buffer), residual=identity)


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
