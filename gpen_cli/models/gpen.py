"""GPEN's generator (FullGenerator), written to load the published checkpoints unchanged.

An encoder squeezes the degraded face into one style vector and keeps its feature map at
every resolution; a StyleGAN2 decoder renders the face from that style and concatenates the
encoder feature of the same resolution to each layer's output (GPEN's "noise" inputs).

Module and parameter names follow the official code so that `state_dict()` keys match
the published files. Every module has two forward paths computing the same function:

* exact: the official formulation (per-sample weights, grouped convolutions, upfirdn2d
  done by reshaping channels into the batch). Kept as the reference (`--exact`).
* fast (default): no grouped convolutions. The style either scales the input and one
  shared-weight convolution serves the whole batch (demodulation then scales the output), or,
  where the weights are smaller than the input (high resolutions on the CPU), it is folded
  into one weight tensor per face. Demodulation, bias, noise concatenation and the √2 gain of
  the activation are written in two passes into one buffer; blur and resampling are depthwise
  convolutions; weights scaled once are cached until they change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

BLUR_KERNEL = (1, 3, 3, 1)
DEMOD_EPS = 1e-8
SQRT2 = math.sqrt(2)
LEAK = 0.2

# A fast modulated convolution yields, per chunk of the batch, the raw convolution output
# and the per (face, channel) factor still to apply to it (None when folded into the weights).
Parts = list[tuple[torch.Tensor, torch.Tensor | None]]


def channel_table(channel_multiplier: int, narrow: float) -> dict[int, int]:
    """Feature channels at each resolution, as in the official generator."""
    base = {4: 512, 8: 512, 16: 512, 32: 512}
    wide = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16, 2048: 8}
    table = {res: int(ch * narrow) for res, ch in base.items()}
    table.update({res: int(ch * channel_multiplier * narrow) for res, ch in wide.items()})
    return table


def make_blur_kernel(taps: Sequence[int]) -> torch.Tensor:
    kernel = torch.tensor(taps, dtype=torch.float32)
    kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


# --------------------------------------------------------------------------- fast-path helpers


def _compiling() -> bool:
    return torch.compiler.is_compiling()


class CachedDerived(nn.Module):
    """A module that keeps tensors derived from its weights (scaled, squared...) between calls.

    Only in inference mode: an entry is keyed on the source tensor's version counter (bumped
    by in-place edits and `load_state_dict`), address, dtype and device, and `.to()`/`.half()`
    and friends clear the cache. Under torch.compile or autograd it recomputes every time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._derived: dict[str, tuple[tuple, torch.Tensor]] = {}

    def derived(
        self, key: str, source: torch.Tensor, make: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if _compiling() or not torch.is_inference_mode_enabled() or source.is_inference():
            return make(source)
        stamp = (source._version, source.data_ptr(), source.dtype, source.device)
        entry = self._derived.get(key)
        if entry is None or entry[0] != stamp:
            entry = (stamp, make(source))
            self._derived[key] = entry
        return entry[1]

    def _apply(self, fn, recurse=True):
        self._derived = {}
        return super()._apply(fn, recurse)


def modulate_weights(x: torch.Tensor, out_channels: int, kernel_size: int) -> bool:
    """Fold the style into per-face weights rather than scale the input?

    Both are one elementwise pass; on the CPU the smaller tensor wins (the weights at high
    resolution, the input at low resolution). Accelerators prefer one large batched
    convolution, so there the input is always scaled.
    """
    if x.device.type != "cpu":
        return False
    return x.shape[2] * x.shape[3] > out_channels * kernel_size**2


def like_memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.dim() == 4 and x.shape[1] > 1 and x.stride(1) == 1
    return torch.channels_last if channels_last else torch.contiguous_format


def join_parts(parts: Parts) -> torch.Tensor:
    """The whole batch's output of a fast modulated convolution."""
    scaled = [
        raw if scale is None else raw * scale.to(raw.dtype)[:, :, None, None]
        for raw, scale in parts
    ]
    return scaled[0] if len(scaled) == 1 else torch.cat(scaled)


def biased_lrelu_concat(
    parts: Parts, feature: torch.Tensor, noise_weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """FusedLeakyReLU(NoiseInjection(conv, feature)) from the parts of a modulated conv.

    √2·lrelu(z + b) = lrelu(√2·z + √2·b): demodulation, bias and gain are one `addcmul`
    written straight into the concatenated buffer, then one in-place leaky ReLU.
    """
    first = parts[0][0]
    dtype, channels = first.dtype, first.shape[1]
    bias = (bias * SQRT2).to(dtype).view(1, -1, 1, 1)
    noise_gain = (noise_weight * SQRT2).to(dtype)
    if _compiling():  # plain ops: inductor fuses them itself
        out = torch.cat([join_parts(parts), feature * noise_gain], 1) + bias
        return F.leaky_relu(out, LEAK)
    shape = (feature.shape[0], channels + feature.shape[1], *feature.shape[2:])
    out = torch.empty(
        shape, dtype=dtype, device=first.device, memory_format=like_memory_format(feature)
    )
    start = 0
    for raw, scale in parts:
        target = out[start : start + raw.shape[0], :channels]
        if scale is None:
            torch.add(raw, bias[:, :channels], out=target)
        else:
            torch.addcmul(bias[:, :channels], raw, scale.to(dtype)[:, :, None, None], out=target)
        start += raw.shape[0]
    torch.addcmul(bias[:, channels:], feature, noise_gain, out=out[:, channels:])
    return F.leaky_relu_(out, LEAK)


# --------------------------------------------------------------------------- resampling


def upfirdn2d_exact(
    x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple[int, int]
):
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


def upfirdn2d_fast(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple[int, int]):
    """The same filter as a depthwise (transposed) convolution: no reshapes, no zero stuffing."""
    channels = x.shape[1]
    kh, kw = kernel.shape
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).expand(channels, 1, kh, kw).contiguous()
    pad0, pad1 = pad
    if up == 1:
        if pad0 == pad1:  # padding inside the convolution: no padded copy of the input
            return F.conv2d(x, weight, stride=down, padding=pad0, groups=channels)
        return F.conv2d(F.pad(x, [pad0, pad1, pad0, pad1]), weight, stride=down, groups=channels)
    # Transposed conv with stride `up` = zero insertion + correlation with the flipped kernel;
    # its implicit padding is kh - 1 - pad0 on the leading side.
    lead = kh - 1 - pad0
    trail = kh - 1 - pad1 - (up - 1)
    if down != 1 or lead < 0 or lead != trail:
        return upfirdn2d_exact(x, kernel, up, down, pad)
    return F.conv_transpose2d(
        x, torch.flip(weight, [2, 3]), stride=up, padding=lead, groups=channels
    )


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        kernel = make_blur_kernel(BLUR_KERNEL)
        if upsample_factor > 1:
            kernel = kernel * upsample_factor**2
        self.register_buffer("kernel", kernel)
        self.pad = pad
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resample = upfirdn2d_fast if self.fast else upfirdn2d_exact
        return resample(x, self.kernel, 1, 1, self.pad)


class Upsample(nn.Module):
    """2x upsampling of the RGB skip path."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor
        kernel = make_blur_kernel(BLUR_KERNEL) * factor**2
        self.register_buffer("kernel", kernel)
        p = kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resample = upfirdn2d_fast if self.fast else upfirdn2d_exact
        return resample(x, self.kernel, self.factor, 1, self.pad)


# --------------------------------------------------------------------------- building blocks


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
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
    """Linear layer with equalized learning rate (weights scaled at run time)."""

    def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activate=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul
        # The fast path scales the (tiny) input instead of the whole weight matrix.
        if self.fast:
            out = F.linear(x * self.scale, self.weight)
            return fused_leaky_relu(out, bias) if self.activate else out + bias
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class EqualConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
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


class ConvLayer(nn.Sequential, CachedDerived):
    """Encoder layer: [blur,] conv, biased leaky ReLU."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample=False):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(BLUR_KERNEL) - 2) + (kernel_size - 1)
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
            conv = EqualConv2d(in_channel, out_channel, kernel_size, stride=2, bias=False)
        else:
            conv = EqualConv2d(
                in_channel, out_channel, kernel_size, padding=kernel_size // 2, bias=False
            )
        layers += [conv, FusedLeakyReLU(out_channel)]
        super().__init__(*layers)
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().forward(x)
        *blur, conv, activate = self
        if blur:
            x = blur[0](x)
        # √2·lrelu(conv(x, w·s) + b) = lrelu(conv(x, √2·s·w) + √2·b): one conv, one in-place pass.
        weight = self.derived("weight", conv.weight, lambda w: w * (conv.scale * SQRT2))
        bias = self.derived("bias", activate.bias, lambda b: b * SQRT2)
        out = F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)
        return F.leaky_relu(out, LEAK) if _compiling() else F.leaky_relu_(out, LEAK)


class ModulatedConv2d(CachedDerived):
    """StyleGAN2 convolution whose weights are scaled per sample by the style."""

    def __init__(
        self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False
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
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        if upsample:
            p = (len(BLUR_KERNEL) - 2) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.fast = True

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = self.modulation(style)
        if not self.fast:
            return self._forward_exact(x, style)
        return join_parts(self.fast_parts(x, style))

    def _forward_exact(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channel, height, width = x.shape
        k = self.kernel_size
        weight = self.scale * self.weight * style.view(batch, 1, in_channel, 1, 1)
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

    def fast_parts(self, x: torch.Tensor, style: torch.Tensor, gain: float = 1.0) -> Parts:
        """The modulated convolution, times `gain`, without grouped convolutions.

        `style` is the modulation's output (N × in_channel). Returns the output in chunks of
        the batch with the per (face, channel) factor each still needs (see `Parts`).
        """
        weight = self.weight[0]
        style = style * self.scale  # the equalized-lr scale rides on the (small) style
        scale: torch.Tensor | None = None
        if self.demodulate:
            # sum over (in, kh, kw) of (w·s)² = s² @ (sum over taps of w²)ᵀ, in fp32.
            energy = self.derived("energy", self.weight, lambda w: w[0].float().pow(2).sum([2, 3]))
            scale = torch.rsqrt(style.float().pow(2) @ energy.t() + DEMOD_EPS) * gain
        elif gain != 1.0:
            scale = style.new_full((style.shape[0], self.out_channel), gain, dtype=torch.float32)
        if modulate_weights(x, self.out_channel, self.kernel_size):
            factors = style.float()[:, None, :] * (1.0 if scale is None else scale[:, :, None])
            factors = factors.to(weight.dtype)
            return [
                (self._convolve(x[i : i + 1], self._face_weight(weight, factors[i], x)), None)
                for i in range(x.shape[0])
            ]
        return [
            (
                self._convolve(x * style.to(x.dtype)[:, :, None, None], self._conv_layout(weight)),
                scale,
            )
        ]

    def _conv_layout(self, weight: torch.Tensor) -> torch.Tensor:
        """(out, in, k, k) as the convolution takes it: (in, out, k, k) when transposed."""
        return weight.transpose(0, 1) if self.upsample else weight

    def _face_weight(
        self, weight: torch.Tensor, factors: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """One face's modulated (and demodulated) weights, laid out like the input."""
        factors = self._conv_layout(factors[:, :, None, None])
        weight = self._conv_layout(weight)
        if _compiling():
            return weight * factors
        out = torch.empty(
            weight.shape,
            dtype=weight.dtype,
            device=weight.device,
            memory_format=like_memory_format(x),
        )
        return torch.mul(weight, factors, out=out)

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.upsample:  # demodulation commutes with the blur: both act per channel
            return self.blur(F.conv_transpose2d(x, weight, stride=2))
        return F.conv2d(x, weight, padding=self.padding)


class NoiseInjection(nn.Module):
    """GPEN's "noise": the encoder feature, weighted and concatenated to the decoder's."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.weight * feature), dim=1)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel * 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if not self.conv.fast:
            return self.activate(self.noise(self.conv(x, style), feature))
        parts = self.conv.fast_parts(x, self.conv.modulation(style), gain=SQRT2)
        return biased_lrelu_concat(parts, feature, self.noise.weight, self.activate.bias)


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# --------------------------------------------------------------------------- networks


class Generator(nn.Module):
    """StyleGAN2 decoder with encoder features concatenated at every layer."""

    def __init__(
        self, size: int, style_dim: int, n_mlp: int, channels: dict[int, int], lr_mlp=0.01
    ):
        super().__init__()
        self.log_size = int(math.log2(size))
        layers: list[nn.Module] = [PixelNorm()]
        layers += [
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)
        ]
        self.style = nn.Sequential(*layers)

        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim)
        self.to_rgb1 = ToRGB(channels[4] * 2, style_dim, upsample=False)

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel = channels[4]
        for level in range(3, self.log_size + 1):
            out_channel = channels[2**level]
            self.convs.append(StyledConv(in_channel * 2, out_channel, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channel * 2, out_channel, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_channel * 2, style_dim))
            in_channel = out_channel

    def forward(self, latent: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """`features`: encoder outputs from 4x4 up to full size, one per resolution."""
        style = self.style(latent)
        # The decoder keeps the encoder's memory layout (channels_last or not) throughout.
        start = self.input(latent.shape[0]).contiguous(
            memory_format=like_memory_format(features[0])
        )
        out = self.conv1(start, style, features[0])
        skip = self.to_rgb1(out, style)
        for index, to_rgb in enumerate(self.to_rgbs):
            feature = features[index + 1]
            out = self.convs[2 * index](out, style, feature)
            out = self.convs[2 * index + 1](out, style, feature)
            skip = to_rgb(out, style, skip)
        return skip


class FullGenerator(nn.Module):
    """GPEN: maps N×3×S×S RGB faces in [-1, 1] to restored faces in the same range."""

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
        self.generator = Generator(size, style_dim, n_mlp, channels)

        self.ecd0 = nn.Sequential(ConvLayer(3, channels[size], 1))
        in_channel = channels[size]
        for index, level in enumerate(range(self.log_size - 1, 1, -1), start=1):
            out_channel = channels[2**level]
            setattr(
                self,
                f"ecd{index}",
                nn.Sequential(ConvLayer(in_channel, out_channel, 3, downsample=True)),
            )
            in_channel = out_channel
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 16, style_dim, activate=True))

    @property
    def encoder(self) -> list[nn.Module]:
        return [getattr(self, f"ecd{index}") for index in range(self.log_size - 1)]

    def set_fast(self, fast: bool) -> FullGenerator:
        """Choose the fast (default) or the exact (official) formulation of every layer."""
        for module in self.modules():
            if hasattr(module, "fast"):
                module.fast = fast
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        latent = self.final_linear(x.flatten(1))
        return self.generator(latent, features[::-1])
