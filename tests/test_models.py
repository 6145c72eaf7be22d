"""The GPEN generator: published layouts, the official output, and checkpoint loading."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import seeded
import torch

from gpen_cli.core.errors import CheckpointError
from gpen_cli.models import build_gpen, infer_config, load_gpen


@pytest.fixture(scope="module")
def layouts() -> dict:
    """Every key and shape of the official GPEN-BFR-256/512/1024/2048 (official code's output)."""
    return json.loads((seeded.OFFICIAL / "gpen_state_dict_layouts.json").read_text())


@pytest.mark.parametrize("name", ["GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024", "GPEN-BFR-2048"])
def test_state_dict_matches_published_layout(layouts, name):
    config = layouts[name]["config"]
    with torch.device("meta"):
        model = build_gpen(config["size"], config["channel_multiplier"], config["narrow"])
    ours = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    assert ours == layouts[name]["state_dict"]


@pytest.mark.parametrize("name", ["GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024", "GPEN-BFR-2048"])
def test_config_is_inferred_from_published_layout(layouts, name):
    fake = {
        key: torch.empty(shape, device="meta") for key, shape in layouts[name]["state_dict"].items()
    }
    config = infer_config(fake)
    expected = layouts[name]["config"]
    assert (config["size"], config["channel_multiplier"], config["narrow"]) == (
        expected["size"],
        expected["channel_multiplier"],
        expected["narrow"],
    )


@pytest.mark.parametrize("fast", [False, True], ids=["exact", "fast"])
def test_reproduces_official_output(tiny_reference, fast):
    model = load_gpen(tiny_reference["state_dict"], fast=fast)
    assert model.fast == fast
    assert model.size == tiny_reference["config"]["size"]
    assert not model.training
    with torch.inference_mode():
        out = model(tiny_reference["input"])
    assert isinstance(out, torch.Tensor)
    assert out.shape == tiny_reference["output"].shape
    # The official formulation is the official code's arithmetic: run on one CPU, the two are
    # bit for bit the same (checked on an AVX2 EPYC against the official code run there). The
    # stored reference was made on another CPU, whose oneDNN kernels round differently: the
    # official code itself differs from it by 2.6e-6 on that EPYC. The exact bound is 4x that.
    tolerance = 1e-4 if fast else 1e-5
    assert (out - tiny_reference["output"]).abs().max().item() <= tolerance


def test_loads_from_file_and_wrapped_variants(tiny_reference, tmp_path):
    state = tiny_reference["state_dict"]
    variants = {
        "plain.pth": state,
        "module.pth": {f"module.{k}": v for k, v in state.items()},
        "g_ema.pth": {"g_ema": state, "step": torch.tensor(3)},
        "params_ema.pth": {"params_ema": {f"module.{k}": v for k, v in state.items()}},
        "half.pth": {k: v.half() for k, v in state.items()},
    }
    with torch.inference_mode():
        reference = load_gpen(state)(tiny_reference["input"])
        for name, payload in variants.items():
            path = tmp_path / name
            torch.save(payload, path)
            model = load_gpen(path)
            tolerance = 5e-2 if name == "half.pth" else 0.0
            assert (model(tiny_reference["input"]) - reference).abs().max().item() <= tolerance, (
                name
            )


def test_random_generator_roundtrips_through_official_format(tmp_path):
    torch.manual_seed(0)
    model = build_gpen(64, channel_multiplier=1, narrow=0.25).eval()
    path = tmp_path / "GPEN-custom-64.pth"
    torch.save(model.state_dict(), path)
    loaded = load_gpen(path)
    assert loaded.config["narrow"] == 0.25 and loaded.size == 64
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_not_a_gpen_checkpoint_is_named(tiny_reference, tmp_path):
    state = dict(tiny_reference["state_dict"])
    del state["generator.to_rgbs.1.bias"]
    with pytest.raises(CheckpointError, match=r"missing: generator\.to_rgbs\.1\.bias"):
        load_gpen(state)

    state = dict(tiny_reference["state_dict"])
    state["ecd1.0.1.weight"] = torch.zeros(7, 7, 3, 3)
    with pytest.raises(CheckpointError, match=r"wrong shape: ecd1\.0\.1\.weight"):
        load_gpen(state)

    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, other)
    with pytest.raises(CheckpointError, match="resnet.pth: not a GPEN generator"):
        load_gpen(other)

    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth: not a readable PyTorch checkpoint"):
        load_gpen(text)

    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_gpen(tmp_path / "absent.pth")


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.mkdir, (self.marker,))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "code-was-run"
    path = tmp_path / "evil.pth"
    torch.save({"g_ema": {"x": torch.zeros(1)}, "payload": _RunsCodeWhenUnpickled(marker)}, path)
    # Sanity: an unrestricted unpickler would indeed run it.
    assert pickle.dumps(_RunsCodeWhenUnpickled(marker))
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused: the file tried to run code"):
        load_gpen(path)
    assert not marker.exists()


class _RunsShellCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_checkpoint_calling_a_shell_is_refused_naming_the_call(tmp_path):
    marker = tmp_path / "shell-was-run"
    path = tmp_path / "GPEN-BFR-512.pth"
    torch.save({"x": torch.zeros(1), "payload": _RunsShellCommand(f"touch '{marker}'")}, path)
    with pytest.raises(CheckpointError) as caught:
        load_gpen(path)
    message = str(caught.value)
    assert "tried to run code (" in message and ".system)" in message
    assert "corrupt" not in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_plain_pickle_calling_a_shell_is_refused_naming_the_call(tmp_path, protocol, recwarn):
    """Not torch's format: a bare pickle of any protocol (torch's reader stops at protocol
    4's first opcode, before the call, so the call is read from the opcodes)."""
    marker = tmp_path / "shell-was-run"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"x": _RunsShellCommand(f"touch '{marker}'")}, protocol))
    with pytest.raises(
        CheckpointError, match=r"evil\.pth: refused: the file tried to run code \(\w+\.system\)"
    ):
        load_gpen(path)
    assert not marker.exists()
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_any_power_of_two_and_width():
    for size, multiplier, narrow in [(64, 1, 0.125), (128, 2, 0.25)]:
        model = build_gpen(size, multiplier, narrow).eval()
        with torch.inference_mode():
            out = model(torch.zeros(2, 3, size, size))
        assert out.shape == (2, 3, size, size)
    with pytest.raises(ValueError, match="power of two"):
        build_gpen(96)


def _stride_zero_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor as a stride-0 view of one element: the shapes stay, the bytes go."""
    return {
        key: torch.zeros(1, dtype=value.dtype).expand(value.shape) for key, value in state.items()
    }


@pytest.fixture()
def no_generator_built(monkeypatch):
    """Fail the test if a real generator is constructed (only the meta skeleton may be)."""
    from gpen_cli.models import loading

    real = loading.FullGenerator

    def guarded(*args, **kwargs):
        if torch.empty(0).device.type != "meta":
            raise AssertionError("a generator was built before the checkpoint was refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "FullGenerator", guarded)


def test_stride_zero_checkpoint_is_refused_before_anything_is_built(tmp_path, no_generator_built):
    # The published GPEN-BFR-512 layout, 284 MB of float32, in a file of a few kB.
    with torch.device("meta"):
        layout = build_gpen(512, channel_multiplier=2, narrow=1.0).state_dict()
    path = tmp_path / "bomb.pth"
    torch.save(_stride_zero_copy(layout), path)
    assert path.stat().st_size < 200_000

    with pytest.raises(
        CheckpointError, match=r"bomb\.pth: refused: its tensors declare 284\.\d MB"
    ):
        load_gpen(path)


def test_checkpoint_describing_a_gigantic_generator_is_refused(
    tiny_reference, tmp_path, no_generator_built
):
    # As the 6 kB file: 4096 channels at 4 px would make a generator of > 10 GB.
    state = dict(tiny_reference["state_dict"])
    state["generator.input.input"] = torch.zeros(1).expand(1, 4096, 4, 4)
    with pytest.raises(CheckpointError, match="4096 channels at 4 px"):
        load_gpen(state)

    path = tmp_path / "wide.pth"
    torch.save(_stride_zero_copy(state), path)
    with pytest.raises(CheckpointError, match=r"wide\.pth: refused: its tensors declare"):
        load_gpen(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty header"])
def test_broken_safetensors_file_is_one_line(tiny_reference, tmp_path, damage):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(dict(tiny_reference["state_dict"]), str(path))
    data = path.read_bytes()
    damaged = {
        "garbage": os.urandom(4096),
        "truncated": data[: len(data) // 2],
        "empty header": (2).to_bytes(8, "little") + b"{}",
    }[damage]
    path.write_bytes(damaged)

    with pytest.raises(CheckpointError) as caught:
        load_gpen(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a")
    assert "\n" not in message
