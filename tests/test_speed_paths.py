"""The fast forward path: the same function as the official one, in FP32, BF16, compiled or not."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from gpen_cli.core import devices as devices_module
from gpen_cli.core.devices import compile_mode, pick_dtype
from gpen_cli.models import build_gpen, load_gpen, ops
from gpen_cli.stages.forward import GpenForward, pad_batch


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, peak: float) -> float:
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    mse = (a - b).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


@pytest.fixture
def tiny_crops(tiny_reference) -> list[np.ndarray]:
    """The fixture's two faces as uint8 BGR crops, plus a third, flipped one."""
    rgb = ((tiny_reference["input"].permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255)
    crops = [np.ascontiguousarray(face[..., ::-1]) for face in rgb.to(torch.uint8).numpy()]
    return crops + [np.ascontiguousarray(crops[0][:, ::-1])]


@pytest.mark.parametrize("strategy", ["per-face weights", "scaled input", "by size"])
@pytest.mark.parametrize(
    "layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"]
)
def test_fast_path_matches_official_output(tiny_reference, monkeypatch, strategy, layout):
    if strategy != "by size":
        monkeypatch.setattr(ops, "modulate_weights", lambda *_: strategy == "per-face weights")
    x = tiny_reference["input"].contiguous(memory_format=layout)
    with torch.inference_mode():
        fast = load_gpen(tiny_reference["state_dict"], fast=True)(x)
        exact = load_gpen(tiny_reference["state_dict"], fast=False)(x)
    assert (fast - tiny_reference["output"]).abs().max().item() <= 1e-4
    assert (fast - exact).abs().max().item() <= 1e-4


def test_cached_weights_follow_changes_to_the_model(tiny_reference):
    """Scaled weights are cached between calls, never past a change of the weights."""
    model = load_gpen(tiny_reference["state_dict"], fast=True)
    other = build_gpen(**model.config, fast=True)
    x = tiny_reference["input"]
    with torch.inference_mode():
        model(x)  # fills the caches
        model.load_state_dict(other.state_dict())
        assert torch.allclose(model(x), other.eval()(x), atol=1e-5)
        model.bfloat16().float()  # the round trip rounds the weights: caches must follow
        rounded = build_gpen(**model.config, fast=True)
        rounded.load_state_dict(model.state_dict())
        assert torch.equal(model(x), rounded.eval()(x))


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "bf16"])
def test_forward_leaves_the_model_it_is_handed_untouched(tiny_reference, monkeypatch, exact, half):
    """GpenForward runs its own copy when it needs another formulation, dtype or mode."""
    monkeypatch.setattr(devices_module, "cpu_has_fast_bf16", lambda: True)
    model = build_gpen(**tiny_reference["config"]).train()  # official, training, with grads
    model.load_state_dict(tiny_reference["state_dict"])
    before = {key: value.clone() for key, value in model.state_dict().items()}
    forward = GpenForward(model, device="cpu", half=half, exact=exact)
    assert forward.model is not model
    assert forward.model.fast == (not exact) and not forward.model.training
    assert type(model).fast is False and model.training
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_forward_runs_a_ready_model_as_it_is(tiny_reference):
    """No copy when the model already is what the run needs: its weights are not doubled."""
    for fast in (False, True):
        model = load_gpen(tiny_reference["state_dict"], fast=fast)
        assert GpenForward(model, device="cpu", exact=not fast).model is model
        assert GpenForward(model, device="cpu", exact=fast).model is not model


def test_bf16_restores_faces_like_fp32(tiny_reference, tiny_crops, monkeypatch):
    monkeypatch.setattr(devices_module, "cpu_has_fast_bf16", lambda: True)
    fp32 = GpenForward(load_gpen(tiny_reference["state_dict"]), device="cpu", half=False)
    bf16 = GpenForward(load_gpen(tiny_reference["state_dict"]), device="cpu", half=True)
    assert (fp32.dtype, bf16.dtype) == (torch.float32, torch.bfloat16)
    reference, restored = fp32(tiny_crops), bf16(tiny_crops)
    assert all(face.dtype == np.uint8 and face.shape == (64, 64, 3) for face in restored)
    assert psnr(np.stack(restored), np.stack(reference), 255) >= 40


def test_dtype_choice(monkeypatch, caplog):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_dtype(cuda, True) == torch.float16
    assert pick_dtype(cuda, False) == torch.float32  # FP32 unless asked, on every device
    assert pick_dtype(cpu, False) == torch.float32
    monkeypatch.setattr(devices_module, "cpu_has_fast_bf16", lambda: True)
    assert pick_dtype(cpu, True) == torch.bfloat16
    monkeypatch.setattr(devices_module, "cpu_has_fast_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert pick_dtype(cpu, True) == torch.float32
    assert "no native BF16" in caplog.text
    assert compile_mode(cuda) == "reduce-overhead" and compile_mode(cpu) == "default"


def test_compile_failure_falls_back_with_one_warning(
    tiny_reference, tiny_crops, monkeypatch, caplog
):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nlong traceback follows")

    eager = GpenForward(load_gpen(tiny_reference["state_dict"]), device="cpu", batch_size=2)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING):
        fallback = GpenForward(
            load_gpen(tiny_reference["state_dict"]), device="cpu", batch_size=2, compile_model=True
        )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "torch.compile" in warnings[0].getMessage() and "\n" not in warnings[0].getMessage()
    assert "no C++ compiler found" in warnings[0].getMessage()
    assert not fallback.compiled
    assert all(
        np.array_equal(a, b) for a, b in zip(fallback(tiny_crops), eager(tiny_crops), strict=True)
    )


def test_compile_failing_at_first_run_also_falls_back(
    tiny_reference, tiny_crops, monkeypatch, caplog
):
    def compile_that_fails_when_run(model, **kwargs):
        def run(batch):
            raise RuntimeError("inductor: backend compiler failed")

        return run

    monkeypatch.setattr(torch, "compile", compile_that_fails_when_run)
    with caplog.at_level(logging.WARNING):
        forward = GpenForward(
            load_gpen(tiny_reference["state_dict"]), device="cpu", compile_model=True
        )
    assert not forward.compiled and "backend compiler failed" in caplog.text
    assert len(forward(tiny_crops)) == len(tiny_crops)


def test_compiled_model_sees_full_batches_only(tiny_reference, tiny_crops, monkeypatch):
    """The last batch is padded to the batch size; the padding never reaches the caller."""
    shapes = []

    def recording_compile(model, **kwargs):
        def run(batch):
            shapes.append(tuple(batch.shape))
            return model(batch)

        return run

    eager = GpenForward(load_gpen(tiny_reference["state_dict"]), device="cpu", batch_size=2)
    monkeypatch.setattr(torch, "compile", recording_compile)
    compiled = GpenForward(
        load_gpen(tiny_reference["state_dict"]), device="cpu", batch_size=2, compile_model=True
    )
    assert compiled.compiled
    shapes.clear()  # forget the probe run
    padded = compiled(tiny_crops)  # 3 crops: a full batch, then 1 crop padded to 2
    assert shapes == [(2, 3, 64, 64), (2, 3, 64, 64)]
    unpadded = eager(tiny_crops)
    assert len(padded) == 3
    # A batch of one and a padded batch of two may round a pixel differently (the fast
    # kernels pick their strategy by batch size), never by more than a level.
    for a, b in zip(padded, unpadded, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_pad_batch_repeats_the_last_crop():
    crops = [np.full((2, 2, 3), value, np.uint8) for value in (1, 2)]
    padded = pad_batch(crops, 4)
    assert [int(c[0, 0, 0]) for c in padded] == [1, 2, 2, 2]
    assert pad_batch(crops, 2) == crops


def test_channels_last_stays_through_the_network(tiny_reference):
    model = load_gpen(tiny_reference["state_dict"], fast=True)
    x = tiny_reference["input"].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = model(x)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_gpen_512_fast_path_is_faithful():
    """GPEN-BFR-512's architecture, seeded random weights: fast vs exact at batch 1, ≥ 60 dB."""
    torch.manual_seed(0)
    model = build_gpen(512, channel_multiplier=2, narrow=1.0).eval().requires_grad_(False)
    fast_model = build_gpen(**model.config, fast=True).eval()
    fast_model.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        exact = model(x).clamp(-1, 1)
        fast = fast_model(x.contiguous(memory_format=torch.channels_last)).clamp(-1, 1)
    assert psnr(fast, exact, peak=2.0) >= 60
