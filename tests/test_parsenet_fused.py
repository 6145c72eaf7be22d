"""ParseNet's fused CPU head computes facexlib's segmentation head, to rounding."""

from __future__ import annotations

import functools

import pytest
import torch

from gpen_cli.models.parsenet import FusedSegmentationHead, fused_head
from gpen_cli.stages.mask import ParsingMasker, _without_identity_copies, segmentation_logits

SIDE = 64  # the network is fully convolutional: a 64 px input runs every layer, cheaply


def seeded_parsenet(seed: int = 3, **architecture) -> torch.nn.Module:
    """A ParseNet with random weights *and* random batch-norm statistics, so that folding
    the normalisation into the convolutions is really exercised."""
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(seed)
    network = ParseNet(in_size=512, out_size=512, parsing_ch=19, **architecture)
    return _without_identity_copies(random_batch_norm(network).eval().requires_grad_(False))


def random_batch_norm(network: torch.nn.Module) -> torch.nn.Module:
    """Random batch-norm statistics and affine terms, in place (from torch's global seed)."""
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return network


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    return seeded_parsenet()


def batch(count: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(count, 3, SIDE, SIDE, generator=generator) * 2 - 1
    return pixels.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def test_fused_head_gives_facexlibs_logits_and_labels(network) -> None:
    head = fused_head(network, torch.float32)
    assert isinstance(head, FusedSegmentationHead)
    x = batch()
    expected = segmentation_logits(network, x)
    got = head(x.clone())
    assert got.shape == expected.shape == (2, 19, SIDE, SIDE)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * max(scale, 1.0)
    agreement = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agreement >= 0.999


@torch.inference_mode()
def test_fused_head_leaves_its_input_unchanged(network) -> None:
    x = batch()
    before = x.clone()
    fused_head(network, torch.float32)(x)
    assert torch.equal(x, before)


@torch.inference_mode()
def test_bf16_head_is_as_close_to_fp32_as_the_bf16_network(network) -> None:
    """Folding in FP32 and rounding each weight once is no worse than facexlib in BF16; where
    oneDNN has no BF16 convolution (an AVX2-only CPU) there is no fused BF16 head and
    facexlib's layers run, as they can."""
    x = batch()
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert fused_head(network, torch.bfloat16) is None
        assert fused_head(network, torch.float32) is not None
        eager = segmentation_logits(_bf16_copy(network), x.to(torch.bfloat16)).float()
        assert (eager - segmentation_logits(network, x)).abs().mean().item() < 0.01  # 0.0014 here
        return
    reference = segmentation_logits(network, x)
    fused = fused_head(network, torch.bfloat16)(x.to(torch.bfloat16)).float()
    eager_bf16 = _bf16_copy(network)
    eager = segmentation_logits(eager_bf16, x.to(torch.bfloat16)).float()
    fused_error = (fused - reference).abs().mean().item()
    eager_error = (eager - reference).abs().mean().item()
    assert fused_error <= 1.5 * eager_error


def _bf16_copy(network: torch.nn.Module) -> torch.nn.Module:
    copy = seeded_parsenet()
    copy.load_state_dict(network.state_dict())
    return copy.to(torch.bfloat16)


def test_a_variant_the_head_does_not_reproduce_runs_facexlibs_layers() -> None:
    variant = seeded_parsenet(relu_type="prelu")  # PReLU: not a post-op the head computes
    assert fused_head(variant, torch.float32) is None


def test_masker_runs_the_fused_head_on_the_cpu_and_facexlibs_when_exact(tmp_path) -> None:
    network = seeded_parsenet()
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(network.state_dict(), path)
    fused = ParsingMasker(path)
    exact = ParsingMasker(path, exact=True)
    assert isinstance(fused.head, FusedSegmentationHead)
    assert isinstance(exact.head, functools.partial)
    with torch.inference_mode():
        x = batch(1)
        agreement = (fused.labels(x) == exact.labels(x)).float().mean().item()
    assert agreement >= 0.999


@pytest.mark.parametrize(
    ("stride", "height", "width"), [(1, 9, 14), (1, 2, 5), (2, 16, 10), (2, 7, 12)]
)
@pytest.mark.parametrize("relu_type", ["leakyrelu", "none"])
@torch.inference_mode()
def test_one_fused_layer_is_facexlibs_conv_layer_at_any_size_and_stride(
    stride: int, height: int, width: int, relu_type: str
) -> None:
    from facexlib.parsing.parsenet import ConvLayer

    from gpen_cli.models.parsenet import FusedConv, pad

    torch.manual_seed(height * width + stride)
    layer = ConvLayer(5, 7, 3, "down" if stride == 2 else "none", relu_type=relu_type)
    layer = _without_identity_copies(layer.eval())
    x = torch.randn(2, 5, height, width).contiguous(memory_format=torch.channels_last)
    expected = layer(x)
    residual = torch.randn_like(expected).contiguous(memory_format=torch.channels_last)
    conv = FusedConv.of(layer, torch.float32)
    torch.testing.assert_close(conv(pad(x)), expected, rtol=1e-5, atol=1e-5)
    if relu_type == "none":  # a residual is added to a layer without activation
        added = conv(pad(x), residual)
        torch.testing.assert_close(added, expected + residual, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 4), (5, 3), (8, 11)])
@pytest.mark.parametrize("relu_type", ["leakyrelu", "none"])
@torch.inference_mode()
def test_an_upsampling_layer_as_four_phases_is_facexlibs_at_any_size(
    height: int, width: int, relu_type: str
) -> None:
    """Nearest ×2, reflection pad and 3×3 convolution = four 2×2 convolutions of the small
    input, edges included (the reflected row of the upsampled image is the edge row)."""
    from facexlib.parsing.parsenet import ConvLayer

    from gpen_cli.models.parsenet import FusedConv, interleave

    torch.manual_seed(height * 31 + width)
    layer = _without_identity_copies(ConvLayer(6, 4, 3, "up", relu_type=relu_type).eval())
    x = torch.randn(2, 6, height, width).contiguous(memory_format=torch.channels_last)
    conv = FusedConv.of(layer, torch.float32)
    assert conv.upsampled and conv.weight.shape == (16, 6, 2, 2)  # 4 taps a phase, not 9
    got = interleave(conv.phases(x), conv.channels, slope=conv.slope)
    torch.testing.assert_close(got, layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 5), (8, 11), (16, 3)])
@pytest.mark.parametrize("inputs", [8, 128])
@torch.inference_mode()
def test_an_upsampling_block_is_facexlibs_with_its_branches_as_one_convolution(
    height: int, width: int, inputs: int
) -> None:
    """An upsampling residual block's shortcut and first layer run as one phase convolution
    (by Winograd's F(3×3, 2×2) from 128 inputs, its input padded to whole tiles where its
    size is not) and are interleaved apart, the first layer's into the second's padded
    input: facexlib's block, to rounding, at sizes of whole tiles and not, edges included."""
    from facexlib.parsing.parsenet import ResidualBlock

    from gpen_cli.models.parsenet import FusedBlock

    torch.manual_seed(height * 31 + width + inputs)
    block = ResidualBlock(inputs, 16, relu_type="leakyrelu", norm_type="bn", scale="up")
    block = _without_identity_copies(random_batch_norm(block).eval())
    x = torch.randn(2, inputs, height, width).contiguous(memory_format=torch.channels_last)
    fused = FusedBlock(block, torch.float32)
    assert (fused.branches.winograd is not None) == (inputs >= 128)
    assert fused.branches.weight.shape == (2 * 4 * 16, inputs, 2, 2)  # both branches' phases
    expected = block(x)
    scale = expected.abs().max().item()
    torch.testing.assert_close(fused(x), expected, rtol=0, atol=2e-6 * scale)
