"""RestoreConfig: one declaration of every setting, checked before anything loads, and the
command-line options made from it."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.cli.options import PIPELINE_OPTIONS, flag
from gpen_cli.core.config import ConfigError, DetectorName, LandmarkSource, MaskKind, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.pipeline import resolve
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.weights import download

runner = CliRunner()


def test_the_defaults_are_the_official_pipeline():
    config = RestoreConfig()
    assert config.mask is MaskKind.PARSING and config.landmarks is LandmarkSource.DETECTOR
    assert config.detector is DetectorName.RETINAFACE_RESNET50
    assert (config.fidelity_weight, config.upscale) == (1.0, 1)
    assert not (config.half or config.exact or config.clahe or config.drop_nested)


def test_choices_are_matched_ignoring_case_and_the_config_is_frozen():
    config = RestoreConfig(mask="RECT", detector="RetinaFace-Mobile", landmarks="FAN")
    assert (config.mask, config.detector, config.landmarks) == (
        MaskKind.RECT,
        DetectorName.RETINAFACE_MOBILE,
        LandmarkSource.FAN,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mask = MaskKind.PARSING  # type: ignore[misc]
    assert config.but(mask="parsing").mask is MaskKind.PARSING and config.mask is MaskKind.RECT


@pytest.mark.parametrize(
    ("changes", "setting", "words"),
    [
        ({"detector": "retinaface-mobil"}, "detector", "did you mean retinaface-mobile?"),
        ({"landmarks": "fan2"}, "landmarks", "did you mean fan?"),
        ({"mask": "blob"}, "mask", "known: parsing, rect"),
        ({"fidelity_weight": 1.5}, "fidelity_weight", "between 0 and 1, got 1.5"),
        ({"score_threshold": -0.1}, "score_threshold", "between 0 and 1"),
        ({"min_face_size": -1}, "min_face_size", "at least 0"),
        ({"short_edge": 8}, "short_edge", "between 16 and 8192"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
        ({"tile": 8}, "tile", "at least 16"),
        ({"upscale": 3}, "upscale", "one of 1, 2, 4"),
        ({"upscale": 2, "short_edge": 256}, "upscale", "cannot be combined with short_edge"),
        ({"device": "mps"}, "device", "use one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_every_bad_value_is_refused_with_the_setting_named(changes, setting, words):
    with pytest.raises(ConfigError) as error:
        RestoreConfig(**changes)
    assert error.value.setting == setting
    assert str(error.value).startswith(f"{setting}: ") and words in str(error.value)


@pytest.mark.parametrize(
    ("changes", "setting", "words"),
    [
        ({"model": "GPEN-BFR-51"}, "model", "did you mean GPEN-BFR-512?"),
        ({"model": "yunet"}, "model", "'yunet' is a face detector, not a GPEN model"),
        ({"bg_upsampler": "realesrnet_x3", "upscale": 2}, "bg_upsampler", "realesrnet_x2"),
    ],
)
def test_a_model_that_is_neither_file_nor_name_is_refused_by_the_resolver(changes, setting, words):
    config = RestoreConfig(**changes)  # values only: nothing is looked up yet
    with pytest.raises(ConfigError) as error:
        resolve.check(config)
    assert error.value.setting == setting
    assert str(error.value).startswith(f"{setting}: ") and words in str(error.value)


def test_a_checkpoint_file_is_a_valid_model(tiny_checkpoint):
    config = RestoreConfig(model=tiny_checkpoint)
    resolve.check(config)
    assert config.model == str(tiny_checkpoint)


def test_a_config_touches_no_file_and_resolving_it_says_the_missing_weights(tmp_path, monkeypatch):
    """Building a configuration that names a weights folder and a checkpoint that do not
    exist looks at neither; resolving it is one line naming the missing file."""
    folder, checkpoint = tmp_path / "no" / "weights", tmp_path / "gone.pth"

    def no_file_system(*args, **kwargs):
        raise AssertionError("the configuration looked at the file system")

    with monkeypatch.context() as patched:
        for name in ("stat", "exists", "is_file", "is_dir", "mkdir"):
            patched.setattr(Path, name, no_file_system)
        patched.setattr(os, "stat", no_file_system)
        config = RestoreConfig(model="GPEN-BFR-256", weights_dir=folder, mask="rect")
        RestoreConfig(model=checkpoint, bg_upsampler=checkpoint, upscale=2).but(tile=64)
    with socket.socket() as closed:  # a port nothing listens on: the download is refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv(download.BASE_URL_ENV, f"http://127.0.0.1:{closed.getsockname()[1]}/")
    with pytest.raises(GpenError) as error:
        resolve.resolve(config.but(device="cpu"))
    message = str(error.value)
    assert message.startswith(f"GPEN-BFR-256.pth not found in {folder}") and "\n" not in message
    with pytest.raises(ConfigError, match="^model: no such file, and unknown GPEN model"):
        resolve.resolve(config.but(model=checkpoint))


def _params(command: str) -> dict:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {param.name: param for param in click_command.params}


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_every_setting_is_an_option_with_the_configs_default(command):
    params = _params(command)
    for field in dataclasses.fields(RestoreConfig):
        param = params[field.name]
        assert flag(field.name) in param.opts
        default = param.default.value if hasattr(param.default, "value") else param.default
        expected = field.default.value if hasattr(field.default, "value") else field.default
        assert default == expected, field.name
    assert set(PIPELINE_OPTIONS) == {field.name for field in dataclasses.fields(RestoreConfig)}


def test_video_and_bench_take_the_settings_that_apply_to_them():
    assert {"aligned", "upscale", "tile"}.isdisjoint(_params("video"))
    assert {"mask", "detector", "fidelity_weight", "clahe"} <= set(_params("video"))
    assert {"mask", "detector", "upscale", "half", "exact"} <= set(_params("bench"))


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["--model", "GPEN-BFR-51"], "error: --model: no such file, and unknown GPEN model"),
        (["--device", "vulkan"], "error: --device: vulkan is not supported"),
        (["--upscale", "3"], "error: --upscale: must be one of 1, 2, 4"),
        (["--bg-upsampler", "GPEN-BFR-256", "--upscale", "2"], "error: --bg-upsampler: "),
        (["--compile", "--upscale", "2", "--short-edge", "64"], "error: --upscale: cannot be"),
    ],
)
@pytest.mark.parametrize("command", ["restore", "batch"])
def test_the_cli_refuses_bad_settings_by_flag_before_any_model_loads(
    tmp_path, monkeypatch, command, arguments, line
):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded although the settings were refused")

    monkeypatch.setattr(FaceRestorer, "__init__", no_loading)
    monkeypatch.setattr(download, "load_model", no_loading)
    monkeypatch.setattr(download, "ensure_weight", no_loading)
    photo = tmp_path / "in" / "a.png"
    photo.parent.mkdir()
    photo.write_bytes(b"not read")
    target = photo if command == "restore" else photo.parent
    result = runner.invoke(app, [command, str(target), "-o", str(tmp_path / "out"), *arguments])
    assert result.exit_code == 2, result.output
    errors = [text for text in result.output.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(line), result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]


def test_a_refused_setting_raised_inside_the_library_is_named_by_its_flag(tmp_path):
    """--device cuda passes the spelling check; the machine has no CUDA: said with its flag."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    photo = tmp_path / "a.png"
    photo.write_bytes(b"not read")
    result = runner.invoke(app, ["restore", str(photo), "--device", "cuda", "--aligned"])
    assert result.exit_code == 2
    assert "error: --device: cuda: CUDA is not available on this machine" in result.output
