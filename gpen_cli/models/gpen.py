"""GPEN's generator (FullGenerator) in the official formulation, loading the published checkpoints.

An encoder squeezes the degraded face into one style vector and keeps its feature map at
every resolution; a StyleGAN2 decoder renders the face from that style and concatenates the
encoder feature of the same resolution to each layer's output (GPEN's "noise" inputs).

This file is the reference: each forward is the official code's arithmetic, in its order, so
`--exact` reproduces the official output bit for bit on the same CPU. Module and parameter
names follow the official code so that `state_dict()` keys match the published files.

Faster kernels computing the same function live in `ops.py`. A module names the classes of
the layers it builds in class attributes (`blur_type`, `conv_type`...); the fast generator
(`ops.FastFullGenerator`) is this architecture with those attributes pointing at the fast
layers. The formulation is therefore fixed when a generator is built, and the same state
dict loads into either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

BLUR_KERNEL = (1, 3, 3, 1)
DEMOD_EPS = 1e-8
SQRT2 = math.sqrt(2)
LEAK = 0.2


def channel_table(channel_multiplier: int, narrow: float) -> dict[int, int]:
    """Feature channels at each resolution, as in the official generator."""
    base = {4: 512, 8: 512, 16: 512, 32: 512}
    wide = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16, 2048: 8}
    table = {res: int(ch * narrow) for res, ch in base.items()}
    table.update({res: int(ch * channel_multiplier * narrow) for res, ch in wide.items()})
    return table


def make_blur_kernel(taps: Sequence[int]) -> torch.Tensor:
    """The separable FIR filter of StyleGAN2's blur, as a normalised 2-D kernel."""
    kernel = torch.tensor(taps, dtype=torch.float32)
    kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple[int, int]):
    """Upsample by zero insertion, pad, FIR-filter, downsample: the official CPU formulation."""
    batch, channels, height, width = x.shape
    kh, kw = kernel.shape
    pad0, pad1 = pad
    out = x.reshape(batch * channels, 1, height, 1, width, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
    out = out.reshape(batch * channels, 1, height * up, width * up)
    out = F.pad(out, [pad0, pad1, pad0, pad1])
    out = F.conv2d(out, torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).to(out.dtype))
    out = out[:, :, ::down, ::down]
    return out.reshape(batch, channels, out.shape[2], out.shape[3])


class Blur(nn.Module):
    """Low-pass filter that keeps strided and transposed convolutions free of aliasing."""

    def __init__(self, pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        kernel = make_blur_kernel(BLUR_KERNEL)
        if upsample_factor > 1:
            kernel = kernel * upsample_factor**2
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, 1, 1, self.pad)


class Upsample(nn.Module):
    """2x upsampling of the RGB skip path."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor
        kernel = make_blur_kernel(BLUR_KERNEL) * factor**2
        self.register_buffer("kernel", kernel)
        p = kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, self.factor, 1, self.pad)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Bias, leaky ReLU, and a √2 gain that keeps the activations' variance."""
    shape = (1, bias.shape[0]) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), negative_slope=LEAK) * SQRT2


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored unit-scale, scaled at run time."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class EqualConv2d(nn.Module):
    """Convolution with equalized learning rate."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )


class ConvLayer(nn.Sequential):
    """Encoder layer: [blur,] conv, biased leaky ReLU (a Sequential: the official key names)."""

    blur_type: type[Blur] = Blur

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample=False):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(BLUR_KERNEL) - 2) + (kernel_size - 1)
            layers.append(self.blur_type(pad=((p + 1) // 2, p // 2)))
            conv = EqualConv2d(in_channel, out_channel, kernel_size, stride=2, bias=False)
        else:
            conv = EqualConv2d(
                in_channel, out_channel, kernel_size, padding=kernel_size // 2, bias=False
            )
        super().__init__(*layers, conv, FusedLeakyReLU(out_channel))


class ModulatedConv2d(nn.Module):
    """StyleGAN2 convolution: the style scales the weights' input channels, face by face.

    The weights are then demodulated (each output channel rescaled to unit norm), and the
    batch runs as one grouped convolution with a group per face.
    """

    blur_type: type[Blur] = Blur
    linear_type: type[EqualLinear] = EqualLinear

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ):
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = self.linear_type(style_dim, in_channel, bias_init=1)
        if upsample:
            p = (len(BLUR_KERNEL) - 2) - (kernel_size - 1)
            self.blur = self.blur_type(pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channel, height, width = x.shape
        k = self.kernel_size
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        x = x.reshape(1, batch * in_channel, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, self.out_channel, out.shape[2], out.shape[3])
            return self.blur(out)
        weight = weight.view(batch * self.out_channel, in_channel, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    """GPEN's "noise": the encoder feature, weighted and concatenated to the decoder's."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.weight * feature), dim=1)


class ConstantInput(nn.Module):
    """The learned 4×4 map the decoder starts from, once per face of `like`'s batch."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(like.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Decoder layer: modulated conv, encoder feature concatenated, biased leaky ReLU."""

    conv_type: type[ModulatedConv2d] = ModulatedConv2d

    def __init__(
        self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, upsample=False
    ):
        super().__init__()
        self.conv = self.conv_type(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel * 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), feature))


class ToRGB(nn.Module):
    """1×1 modulated projection to RGB, added to the upsampled RGB of the layer before."""

    upsample_type: type[Upsample] = Upsample
    conv_type: type[ModulatedConv2d] = ModulatedConv2d

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = self.upsample_type()
        self.conv = self.conv_type(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class Generator(nn.Module):
    """StyleGAN2 decoder with encoder features concatenated at every layer."""

    linear_type: type[EqualLinear] = EqualLinear
    constant_type: type[ConstantInput] = ConstantInput
    styled_conv_type: type[StyledConv] = StyledConv
    to_rgb_type: type[ToRGB] = ToRGB

    def __init__(
        self, size: int, style_dim: int, n_mlp: int, channels: dict[int, int], lr_mlp=0.01
    ):
        super().__init__()
        self.log_size = int(math.log2(size))
        mapping = [
            self.linear_type(style_dim, style_dim, lr_mul=lr_mlp, activate=True)
            for _ in range(n_mlp)
        ]
        self.style = nn.Sequential(PixelNorm(), *mapping)

        self.input = self.constant_type(channels[4])
        self.conv1 = self.styled_conv_type(channels[4], channels[4], 3, style_dim)
        self.to_rgb1 = self.to_rgb_type(channels[4] * 2, style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel = channels[4]
        for level in range(3, self.log_size + 1):
            out_channel = channels[2**level]
            self.convs.append(
                self.styled_conv_type(in_channel * 2, out_channel, 3, style_dim, upsample=True)
            )
            self.convs.append(self.styled_conv_type(out_channel * 2, out_channel, 3, style_dim))
            self.to_rgbs.append(self.to_rgb_type(out_channel * 2, style_dim))
            in_channel = out_channel

    def forward(self, latent: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """`features`: encoder outputs from 4x4 up to full size, one per resolution."""
        style = self.style(latent)
        out = self.conv1(self.input(features[0]), style, features[0])
        skip = self.to_rgb1(out, style)
        for index, to_rgb in enumerate(self.to_rgbs):
            feature = features[index + 1]
            out = self.convs[2 * index](out, style, feature)
            out = self.convs[2 * index + 1](out, style, feature)
            skip = to_rgb(out, style, skip)
        return skip


class FullGenerator(nn.Module):
    """GPEN: maps N×3×S×S RGB faces in [-1, 1] to restored faces in the same range."""

    fast = False  # the formulation, fixed by the class: see `ops.FastFullGenerator`
    generator_type: type[Generator] = Generator
    conv_layer_type: type[ConvLayer] = ConvLayer
    linear_type: type[EqualLinear] = EqualLinear

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
    ):
        super().__init__()
        if size < 64 or size & (size - 1):
            raise ValueError(f"GPEN size must be a power of two >= 64, got {size}")
        self.size = size
        self.config = {
            "size": size,
            "style_dim": style_dim,
            "n_mlp": n_mlp,
            "channel_multiplier": channel_multiplier,
            "narrow": narrow,
        }
        channels = channel_table(channel_multiplier, narrow)
        self.log_size = int(math.log2(size))
        self.generator = self.generator_type(size, style_dim, n_mlp, channels)

        self.ecd0 = nn.Sequential(self.conv_layer_type(3, channels[size], 1))
        in_channel = channels[size]
        for index, level in enumerate(range(self.log_size - 1, 1, -1), start=1):
            out_channel = channels[2**level]
            layer = self.conv_layer_type(in_channel, out_channel, 3, downsample=True)
            setattr(self, f"ecd{index}", nn.Sequential(layer))
            in_channel = out_channel
        self.final_linear = nn.Sequential(
            self.linear_type(channels[4] * 16, style_dim, activate=True)
        )

    @property
    def encoder(self) -> list[nn.Module]:
        return [getattr(self, f"ecd{index}") for index in range(self.log_size - 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        latent = self.final_linear(x.flatten(1))
        return self.generator(latent, features[::-1])
