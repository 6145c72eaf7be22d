"""Fast kernels for GPEN: the same function as `gpen.py`, without its costly formulation.

The official code modulates a copy of the weights per face and runs grouped convolutions;
its blur reshapes channels into the batch. Here, layer by layer:

* modulated convolution: no grouped convolutions. The style either scales the input and one
  shared-weight convolution serves the whole batch (demodulation then scales the output), or,
  where the weights are smaller than the input (high resolutions on the CPU), it is folded
  into one weight tensor per face;
* epilogue: demodulation, bias, noise concatenation and the √2 gain of the activation are
  written in two passes into one buffer;
* blur and resampling: depthwise (transposed) convolutions;
* weights scaled once are cached until they change (inference only).

Each fast layer subclasses its official one (same parameters, same state-dict keys) and
`FastFullGenerator` builds the architecture from them: the formulation is the class's.
Under torch.compile the hand-fused epilogues give way to plain ops that inductor fuses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gpen_cli.models.gpen import (
    DEMOD_EPS,
    LEAK,
    SQRT2,
    Blur,
    ConstantInput,
    ConvLayer,
    EqualLinear,
    FullGenerator,
    Generator,
    ModulatedConv2d,
    StyledConv,
    ToRGB,
    Upsample,
    fused_leaky_relu,
    upfirdn2d,
)

# A fast modulated convolution yields, per chunk of the batch, the raw convolution output
# and the per (face, channel) factor still to apply to it (None when folded into the weights).
Parts = list[tuple[torch.Tensor, torch.Tensor | None]]


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
        return upfirdn2d(x, kernel, up, down, pad)
    return F.conv_transpose2d(
        x, torch.flip(weight, [2, 3]), stride=up, padding=lead, groups=channels
    )


class FastBlur(Blur):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d_fast(x, self.kernel, 1, 1, self.pad)


class FastUpsample(Upsample):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d_fast(x, self.kernel, self.factor, 1, self.pad)


# --------------------------------------------------------------------------- layers


class FastEqualLinear(EqualLinear):
    """Scales the (tiny) input instead of the whole weight matrix."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul
        out = F.linear(x * self.scale, self.weight)
        return fused_leaky_relu(out, bias) if self.activate else out + bias


class FastConvLayer(ConvLayer, CachedDerived):
    """√2·lrelu(conv(x, w·s) + b) = lrelu(conv(x, √2·s·w) + √2·b): one conv, one in-place pass."""

    blur_type = FastBlur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *blur, conv, activate = self
        if blur:
            x = blur[0](x)
        weight = self.derived("weight", conv.weight, lambda w: w * (conv.scale * SQRT2))
        bias = self.derived("bias", activate.bias, lambda b: b * SQRT2)
        out = F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)
        return F.leaky_relu(out, LEAK) if _compiling() else F.leaky_relu_(out, LEAK)


class FastModulatedConv2d(ModulatedConv2d, CachedDerived):
    """The modulated convolution with shared weights (scaled input) or per-face weights."""

    blur_type = FastBlur
    linear_type = FastEqualLinear

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return join_parts(self.parts(x, self.modulation(style)))

    def parts(self, x: torch.Tensor, style: torch.Tensor, gain: float = 1.0) -> Parts:
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
        scaled_input = x * style.to(x.dtype)[:, :, None, None]
        return [(self._convolve(scaled_input, self._conv_layout(weight)), scale)]

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


class FastStyledConv(StyledConv):
    """Modulated conv, then the fused epilogue straight into the concatenated buffer."""

    conv_type = FastModulatedConv2d

    def forward(self, x: torch.Tensor, style: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        parts = self.conv.parts(x, self.conv.modulation(style), gain=SQRT2)
        return biased_lrelu_concat(parts, feature, self.noise.weight, self.activate.bias)


class FastToRGB(ToRGB):
    upsample_type = FastUpsample
    conv_type = FastModulatedConv2d


class FastConstantInput(ConstantInput):
    """Laid out as the encoder feature it is concatenated with (channels_last or not)."""

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return super().forward(like).contiguous(memory_format=like_memory_format(like))


class FastGenerator(Generator):
    linear_type = FastEqualLinear
    constant_type = FastConstantInput
    styled_conv_type = FastStyledConv
    to_rgb_type = FastToRGB


class FastFullGenerator(FullGenerator):
    """GPEN built from the fast layers: the same parameters and outputs, within 1e-4."""

    fast = True
    generator_type = FastGenerator
    conv_layer_type = FastConvLayer
    linear_type = FastEqualLinear
