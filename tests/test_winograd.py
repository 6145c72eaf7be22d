"""Winograd's F(4×4, 3×3) computes the 3×3 convolution it replaces, to FP32 rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpen_cli.models import winograd
from gpen_cli.models.parsenet import WINOGRAD_MIN_INPUTS, FusedSegmentationHead
from gpen_cli.models.winograd import WinogradConv


def layer(
    inputs: int, outputs: int, seed: int = 0, kernel: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (outputs, inputs, kernel, kernel)
    weight = torch.randn(shape, generator=generator, dtype=torch.float64)
    return weight, torch.randn(outputs, generator=generator, dtype=torch.float64)


def padded_input(n: int, channels: int, height: int, width: int, margin: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (n, channels, height + margin, width + margin)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    return x


def close(got: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest difference relative to the largest value."""
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


@pytest.mark.parametrize(
    ("kernel", "n", "channels", "outputs", "height", "width"),
    [
        (3, 1, 3, 5, 4, 4),
        (3, 2, 8, 6, 12, 20),
        (3, 1, 130, 17, 16, 8),
        (2, 1, 3, 5, 3, 3),
        (2, 2, 8, 6, 9, 12),
        (2, 1, 130, 17, 6, 3),
    ],
)
def test_winograd_is_the_convolution_with_bias_relu_and_residual(
    kernel, n, channels, outputs, height, width
) -> None:
    """F(4×4, 3×3) for 3×3 kernels, F(3×3, 2×2) for 2×2 ones (the upsampling phases')."""
    weight, bias = layer(channels, outputs, kernel=kernel)
    x = padded_input(n, channels, height, width, margin=kernel - 1)
    exact = F.conv2d(x, weight, bias)
    conv = WinogradConv(weight.float(), bias.float())
    cl = x.float().contiguous(memory_format=torch.channels_last)

    got = conv(cl)
    assert got.shape == exact.shape and got.is_contiguous(memory_format=torch.channels_last)
    assert close(got, exact) < 2e-5
    assert close(conv(cl, slope=0.2), F.leaky_relu(exact, 0.2)) < 2e-5
    residual = torch.randn(exact.shape, dtype=torch.float64)
    assert close(conv(cl, residual=residual.float()), exact + residual) < 2e-5
    assert torch.equal(cl, x.float())  # the input is left as it was


def test_bands_of_tile_rows_give_the_whole_image(monkeypatch) -> None:
    weight, bias = layer(16, 8)
    x = padded_input(2, 16, 28, 12).float().contiguous(memory_format=torch.channels_last)
    whole = WinogradConv(weight.float(), bias.float())(x)
    # One tile row a band (3 tiles × 16 channels × 4 bytes), then 2 (the last band partial).
    for band_bytes in (3 * 16 * 4, 2 * 3 * 16 * 4):
        monkeypatch.setattr(winograd, "BAND_BYTES", band_bytes)
        assert torch.allclose(WinogradConv(weight.float(), bias.float())(x), whole, atol=1e-6)


def test_sizes_that_are_not_whole_tiles_are_not_taken() -> None:
    weight, bias = layer(1, 1)
    conv = WinogradConv(weight.float(), bias.float())  # F(4×4, 3×3)
    assert conv.fits(torch.zeros(1, 1, 6, 10))
    for height, width in ((5, 6), (6, 5), (2, 2), (8, 10)):
        assert not conv.fits(torch.zeros(1, 1, height + 2, width + 2))
    conv = WinogradConv(weight[..., :2, :2].float(), bias.float())  # F(3×3, 2×2)
    assert conv.fits(torch.zeros(1, 1, 4, 7)) and conv.output_size(torch.zeros(1, 1, 4, 7)) == (
        3,
        6,
    )
    for height, width in ((4, 3), (3, 5), (1, 1)):
        assert not conv.fits(torch.zeros(1, 1, height + 1, width + 1))


def test_relu_and_residual_together_are_refused() -> None:
    weight, bias = layer(4, 4)
    x = padded_input(1, 4, 4, 4).float()
    with pytest.raises(ValueError, match="not both"):
        WinogradConv(weight.float(), bias.float())(x, slope=0.2, residual=torch.zeros(1, 4, 4, 4))


def test_parsenet_head_uses_winograd_for_its_wide_stride_1_layers_and_phases_in_fp32_only() -> None:
    from tests.test_parsenet_fused import seeded_parsenet

    network = seeded_parsenet()
    layers = []
    for dtype in (torch.float32, torch.bfloat16):
        head = FusedSegmentationHead(network, dtype)
        convs = [head.first, head.mask]
        for block in head.encoder + head.body + head.decoder:
            convs += [block.conv1, block.conv2] + ([block.shortcut] if block.shortcut else [])
        layers.append(convs)
    fp32, bf16 = layers
    assert all(conv.winograd is None for conv in bf16)
    for conv in fp32:
        wide = conv.weight.shape[1] >= WINOGRAD_MIN_INPUTS
        # An upsampling layer's is built for both branches of its block at once.
        expected = wide and conv.stride == 1 and not conv.upsampled
        assert (conv.winograd is not None) == expected
    assert sum(conv.winograd is not None for conv in fp32) >= 20  # the body's blocks, and more
    head = FusedSegmentationHead(network, torch.float32)
    pairs = [block.branches for block in head.decoder]
    assert all(pair.winograd.algorithm.kernel == 2 for pair in pairs)  # F(3×3, 2×2)
