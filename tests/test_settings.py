"""Defaults for the pipeline options from a config file and GPEN_* variables: precedence
flag > environment > file > built-in, `gpen config show`, one-line errors for a bad file."""

from __future__ import annotations

import json
import socket
from dataclasses import fields

import pytest
from conftest import photo_path
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.cli.options import flag
from gpen_cli.core import settings
from gpen_cli.core.config import RestoreConfig
from gpen_cli.weights import download, store

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Write the config file the commands read ($GPEN_CONFIG)."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv(settings.CONFIG_ENV, str(path))

    def write(text: str):
        path.write_text(text)
        return path

    return write


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty weights folder and a mirror where nothing listens: a command stops at its
    weights, naming the files its settings need, before any model loads."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(download.BASE_URL_ENV, f"http://127.0.0.1:{sock.getsockname()[1]}/")
    monkeypatch.setenv(store.WEIGHTS_DIR_ENV, str(tmp_path / "no-weights"))


def _needed(tmp_path, *args: str, command: str = "restore") -> str:
    """The missing-weights line of `gpen restore` (or `gpen batch`) run with `args`."""
    if command == "restore":
        target = [str(photo_path("portrait")), "-o", str(tmp_path / "out.png")]
    else:
        target = [str(photo_path("portrait").parent), "-o", str(tmp_path / "out")]
    result = runner.invoke(app, [command, *target, *args])
    assert result.exit_code == 2, result.output
    return result.stderr


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_the_config_file_gives_the_commands_their_defaults(tmp_path, config_file, offline, command):
    config_file('model = "GPEN-BFR-256"\ndetector = "retinaface-mobile"\nmask = "rect"\n')
    message = _needed(tmp_path, command=command)
    assert "GPEN-BFR-256.pth not found" in message
    assert "detection_mobilenet0.25_Final.pth" in message
    assert "parsing_parsenet.pth" not in message  # mask = "rect" needs no parsing model


def test_a_flag_beats_the_environment_which_beats_the_file(
    tmp_path, config_file, offline, monkeypatch
):
    config_file('model = "GPEN-BFR-256"\ndetector = "retinaface-mobile"\n')
    monkeypatch.setenv("GPEN_DETECTOR", "yunet")
    message = _needed(tmp_path)
    assert "face_detection_yunet.onnx" in message and "mobilenet" not in message
    message = _needed(tmp_path, "--detector", "retinaface", "--model", "GPEN-BFR-1024")
    assert "detection_Resnet50_Final.pth" in message and "yunet" not in message
    assert "GPEN-BFR-1024.pth not found" in message


def test_config_show_prints_each_value_and_its_source(config_file, monkeypatch):
    path = config_file('model = "GPEN-BFR-256"\nhalf = true\n')
    monkeypatch.setenv("GPEN_FIDELITY_WEIGHT", "0.7")
    result = runner.invoke(app, ["config", "show"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"  {path}" in lines
    assert "model             GPEN-BFR-256  (config file)" in lines
    assert "half              true  (config file)" in lines
    assert "fidelity_weight   0.7  ($GPEN_FIDELITY_WEIGHT)" in lines
    assert "detector          retinaface-resnet50  (built-in)" in lines
    assert any(line.startswith("weights_dir ") and "$GPEN_WEIGHTS_DIR" in line for line in lines)

    document = json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)
    assert document["config_file"] == str(path) and document["config_file_exists"] is True
    assert document["settings"]["model"] == {"value": "GPEN-BFR-256", "source": str(path)}
    assert document["settings"]["compile"] == {"value": False, "source": "built-in"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('colour = "red"\n', "unknown key 'colour'; known: model, detector"),
        ('detecter = "yunet"\n', "unknown key 'detecter'; did you mean detector?"),
        ('detector = "retina"\n', "detector: unknown detector 'retina'; did you mean retinaface?"),
        ('mask = "square"\n', "mask: unknown mask 'square'; known: parsing, rect"),
        ('batch_size = "8"\n', "batch_size: must be a whole number, got '8'"),
        ("fidelity_weight = 1.5\n", "fidelity_weight: must be between 0 and 1, got 1.5"),
        ('half = "yes"\n', "half: must be true or false, got 'yes'"),
        ("model = \n", "not valid TOML"),
        ('model = "GPEN-BFR-51"\n', "model: no such file, and unknown GPEN model"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_the_key(
    tmp_path, config_file, text, expected
):
    path = config_file(text)
    for args in (
        ["config", "show"],
        ["restore", str(photo_path("portrait")), "-o", str(tmp_path / "o.png")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: config file {path}: ")
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("GPEN_BATCH_SIZE", "many")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: $GPEN_BATCH_SIZE: must be a whole number, got 'many'"


def test_a_config_file_named_but_absent_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "typo.toml"))
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert f"$GPEN_CONFIG names {tmp_path / 'typo.toml'}, which is not a file" in result.stderr


def test_without_a_file_the_user_config_folder_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.CONFIG_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings.config_file() == (
        tmp_path / "gpen-cli" / "config.toml",
        "the user config folder",
    )
    assert settings.effective(["model"])["model"].source == "built-in"  # absent: no error
    (tmp_path / "gpen-cli").mkdir()
    (tmp_path / "gpen-cli" / "config.toml").write_text('model = "GPEN-BFR-256"\n')
    assert settings.default_config().model == "GPEN-BFR-256"


@pytest.mark.parametrize(
    ("text", "value"), [("1", True), ("TRUE", True), ("off", False), ("no", False)]
)
def test_environment_booleans(monkeypatch, text, value):
    monkeypatch.setenv("GPEN_HALF", text)
    assert settings.effective(["half"])["half"].value is value


def test_every_key_is_its_flag_and_every_field_has_one():
    for field in fields(RestoreConfig):
        assert settings.key_of(field.name) == flag(field.name).removeprefix("--").replace("-", "_")
    assert len(settings.KEYS) == len(fields(RestoreConfig))


def test_the_library_keeps_the_built_in_defaults(config_file):
    """A program's output never depends on a file it did not name."""
    config_file('model = "GPEN-BFR-256"\nmask = "rect"\n')
    assert RestoreConfig() == RestoreConfig(model="GPEN-BFR-512", mask="parsing")


def test_a_default_upsampler_is_a_preference_not_noted_on_every_run(tmp_path, config_file, offline):
    config_file('bg_upsampler = "realesrgan_x4plus"\n')
    assert "does nothing without" not in _needed(tmp_path)
    assert "does nothing without --upscale" in _needed(tmp_path, "--bg-upsampler", "none")


@pytest.mark.slow
def test_bench_times_the_users_default_model(tiny_checkpoint, config_file, monkeypatch):
    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    config_file(f'model = "{tiny_checkpoint}"\nmask = "rect"\n')
    args = ["bench", "-b", "1", "--repeats", "1", "--faces", "1", "--device", "cpu", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["config"]["size"] == 64  # the checkpoint named in the file
    assert report["model"]["name"] == tiny_checkpoint.name
