"""Winograd's F(4×4, 3×3) computes the 3×3 convolution it replaces, to FP32 rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpen_cli.models import winograd
from gpen_cli.models.parsenet import WINOGRAD_MIN_INPUTS, FusedSegmentationHead
from gpen_cli.models.winograd import WinogradConv


def layer(inputs: int, outputs: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(outputs, inputs, 3, 3, generator=generator, dtype=torch.float64)
    return weight, torch.randn(outputs, generator=generator, dtype=torch.float64)


def padded_input(n: int, channels: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, channels, height + 2, width + 2, generator=generator, dtype=torch.float64)
    return x


def close(got: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest difference relative to the largest value."""
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


@pytest.mark.parametrize(
    ("n", "channels", "outputs", "height", "width"),
    [(1, 3, 5, 4, 4), (2, 8, 6, 12, 20), (1, 130, 17, 16, 8)],
)
def test_winograd_is_the_convolution_with_bias_relu_and_residual(
    n, channels, outputs, height, width
) -> None:
    weight, bias = layer(channels, outputs)
    x = padded_input(n, channels, height, width)
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
    assert WinogradConv.fits(torch.zeros(1, 1, 6, 10))
    for height, width in ((5, 6), (6, 5), (2, 2), (8, 10)):
        assert not WinogradConv.fits(torch.zeros(1, 1, height + 2, width + 2))


def test_relu_and_residual_together_are_refused() -> None:
    weight, bias = layer(4, 4)
    x = padded_input(1, 4, 4, 4).float()
    with pytest.raises(ValueError, match="not both"):
        WinogradConv(weight.float(), bias.float())(x, slope=0.2, residual=torch.zeros(1, 4, 4, 4))


def test_parsenet_head_uses_winograd_for_its_wide_stride_1_layers_in_fp32_only() -> None:
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
        expected = wide and conv.stride == 1 and not conv.upsampled
        assert (conv.winograd is not None) == expected
    assert sum(conv.winograd is not None for conv in fp32) >= 20  # the body's blocks, and more
