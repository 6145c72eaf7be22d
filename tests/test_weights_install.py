"""Putting weights in their one folder: `gpen weights add`, every download tried, every
missing file named, whole names at 80 columns (no network: a closed port or a local server)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import photo_path
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.weights import download, registry, store, verify

runner = CliRunner()


def _closed_base_url() -> str:
    """A mirror URL where nothing listens: every download fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def _hashed_entry(monkeypatch, content: bytes) -> registry.ModelSpec:
    """A registry entry "tiny" whose published size and sha256 are those of `content`."""
    spec = replace(
        registry.get_spec("yunet"),
        name="tiny",
        filename="tiny.onnx",
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    monkeypatch.setitem(registry.MODELS, "tiny", spec)
    return spec


# ------------------------------------------------------------------ gpen weights add


def test_add_checks_the_published_hash_and_installs_under_the_registry_name(tmp_path, monkeypatch):
    _hashed_entry(monkeypatch, b"the real bytes")
    given = tmp_path / "downloads" / "some name.bin"
    given.parent.mkdir()
    given.write_bytes(b"the real bytes")
    folder = tmp_path / "weights"

    result = runner.invoke(
        app, ["weights", "add", str(given), "--as", "tiny", "--weights-dir", str(folder)]
    )

    assert result.exit_code == 0, result.output
    assert (folder / "tiny.onnx").read_bytes() == b"the real bytes"
    assert "checked: published sha256" in result.stdout
    assert given.read_bytes() == b"the real bytes"  # the file given is only read
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.onnx"]  # no temporary left


def test_add_is_found_by_its_hash_without_a_name(tmp_path, monkeypatch):
    _hashed_entry(monkeypatch, b"the real bytes")
    given = tmp_path / "renamed.onnx"
    given.write_bytes(b"the real bytes")
    result = runner.invoke(
        app, ["weights", "add", str(given), "--weights-dir", str(tmp_path / "w")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / "tiny.onnx").is_file()


def test_add_refuses_a_file_whose_hash_differs_and_writes_nothing(tmp_path, monkeypatch):
    _hashed_entry(monkeypatch, b"the real bytes")
    given = tmp_path / "tiny.onnx"
    given.write_bytes(b"the fake bytes")  # same size, other bytes
    folder = tmp_path / "weights"
    result = runner.invoke(app, ["weights", "add", str(given), "--weights-dir", str(folder)])
    assert result.exit_code == 1
    assert "is not tiny's published" in result.stderr
    assert not folder.exists()


def test_add_checks_a_generator_by_its_structure_and_tells_it_by_its_layout(
    tmp_path, seeded_weights_dir
):
    given = tmp_path / "my-model.pth"
    shutil.copy(seeded_weights_dir / "GPEN-BFR-256.pth", given)
    folder = tmp_path / "weights"

    result = runner.invoke(app, ["weights", "add", str(given), "--weights-dir", str(folder)])

    assert result.exit_code == 0, result.output
    assert "GPEN-BFR-256: installed" in result.stdout
    assert "checked: layout and values" in result.stdout
    installed = folder / "GPEN-BFR-256.pth"
    assert store.sha256_file(installed) == store.sha256_file(given)
    verified = verify.verify("GPEN-BFR-256", folder)  # recorded beside it, as a download is
    assert (verified.status, verified.checksum_source) == ("ok", "recorded")
    assert verified.check == "sha256 recorded at download + layout and values"

    again = runner.invoke(app, ["weights", "add", str(given), "--weights-dir", str(folder)])
    assert again.exit_code == 0 and "already installed" in again.stdout


def test_add_refuses_a_generator_given_as_another_model(tmp_path, seeded_weights_dir):
    folder = tmp_path / "weights"
    args = ["weights", "add", str(seeded_weights_dir / "GPEN-BFR-256.pth"), "--as", "GPEN-BFR-512"]
    result = runner.invoke(app, [*args, "--weights-dir", str(folder)])
    assert result.exit_code == 1
    assert "not GPEN-BFR-512: a GPEN generator, but not GPEN-BFR-512" in result.stderr
    assert not folder.exists()


def test_add_of_an_unknown_file_asks_for_its_name(tmp_path):
    given = tmp_path / "mystery.pth"
    given.write_bytes(b"x" * 100)
    result = runner.invoke(
        app, ["weights", "add", str(given), "--weights-dir", str(tmp_path / "w")]
    )
    assert result.exit_code == 1
    assert "cannot tell which model this file is" in result.stderr and "--as NAME" in result.stderr


def test_add_does_not_replace_another_installed_file_without_force(tmp_path, monkeypatch):
    _hashed_entry(monkeypatch, b"the real bytes")
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "tiny.onnx").write_bytes(b"older bytes")
    given = tmp_path / "tiny.onnx"
    given.write_bytes(b"the real bytes")
    args = ["weights", "add", str(given), "--weights-dir", str(folder)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "exists and is another file; pass --force to replace it" in refused.stderr
    assert (folder / "tiny.onnx").read_bytes() == b"older bytes"
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert (folder / "tiny.onnx").read_bytes() == b"the real bytes"


# ------------------------------------------------------------------ download, missing files


def test_download_tries_every_name_and_reports_each_failure_with_its_url(tmp_path, monkeypatch):
    base = _closed_base_url()
    monkeypatch.setenv(download.BASE_URL_ENV, base)
    names = ["GPEN-BFR-256", "yunet", "parsenet"]
    result = runner.invoke(app, ["weights", "download", *names, "--weights-dir", str(tmp_path)])
    assert result.exit_code == 2
    for name in names:
        url = base + registry.get_spec(name).filename
        assert any(
            line.startswith(f"error: {name}: ") and url in line
            for line in result.stderr.splitlines()
        )
    assert "3 of 3 downloads failed" in result.stderr and "gpen weights add FILE" in result.stderr


def test_a_missing_weights_error_names_every_file_the_command_needs(tmp_path, monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV, _closed_base_url())
    folder = tmp_path / "empty"
    result = runner.invoke(
        app,
        [
            "restore",
            str(photo_path("portrait")),
            "-o",
            str(tmp_path / "out.png"),
            "--weights-dir",
            str(folder),
        ],
    )
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    for filename in ("GPEN-BFR-512.pth", "detection_Resnet50_Final.pth", "parsing_parsenet.pth"):
        assert filename in message
    assert f"not found in {folder} (--weights-dir)" in message
    assert "gpen weights download GPEN-BFR-512 retinaface-resnet50 parsenet" in message
    assert "gpen weights add FILE" in message
    assert not (tmp_path / "out.png").exists()


def test_the_library_names_settings_and_the_command_line_their_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./weights to point to
    folder = tmp_path / "empty"
    with pytest.raises(download.MissingFileError) as caught:
        download.ensure_weight("GPEN-BFR-512", folder, download=False)
    message = str(caught.value)
    assert f"not found in {folder} (weights_dir)" in message
    assert message.endswith(", or point model at a checkpoint file.")
    worded = str(caught.value.worded(lambda setting: "--" + setting.replace("_", "-")))
    assert "(--weights-dir)" in worded and "point --model at a checkpoint file" in worded


def test_a_file_left_in_an_older_place_is_pointed_to(tmp_path, monkeypatch):
    monkeypatch.setenv(download.BASE_URL_ENV, _closed_base_url())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "parsing_parsenet.pth").write_bytes(b"x")
    folder = tmp_path / "the-folder"
    with pytest.raises(download.MissingFileError) as caught:
        download.ensure_weight("parsenet", folder, progress=False)
    assert f"parsing_parsenet.pth is in {tmp_path / 'weights'}: gpen weights add " in str(
        caught.value
    )


# ------------------------------------------------------------------ 80 columns


def test_list_shows_whole_file_names_at_80_columns(tmp_path):
    result = runner.invoke(
        app, ["weights", "list", "--weights-dir", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines if str(tmp_path) not in line) <= 80
    for spec in registry.MODELS.values():
        assert any(spec.name in line.split() and spec.filename in line.split() for line in lines), (
            spec.name
        )


def test_verify_fits_80_columns_and_says_which_check_each_file_passed(
    tmp_path, monkeypatch, seeded_weights_dir
):
    _hashed_entry(monkeypatch, b"good")
    (tmp_path / "tiny.onnx").write_bytes(b"bad!")
    shutil.copy(seeded_weights_dir / "GPEN-BFR-256.pth", tmp_path)
    result = runner.invoke(
        app, ["weights", "verify", "--weights-dir", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if str(tmp_path) not in line) <= 80
    gpen = next(line for line in lines if line.startswith("GPEN-BFR-256 "))
    assert gpen.split()[1:2] == ["ok"] and gpen.endswith("layout and values")
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert "mismatch" in tiny and tiny.endswith("published sha256")
    assert hashlib.sha256(b"bad!").hexdigest() in result.stdout  # a hash is never cut
    report = runner.invoke(app, ["weights", "verify", "--weights-dir", str(tmp_path), "--json"])
    checks = {row["name"]: row["check"] for row in json.loads(report.stdout)["models"]}
    assert checks["GPEN-BFR-256"] == "layout and values" and checks["GPEN-BFR-512"] == ""


def test_fetch_commands_name_the_folder_only_when_it_is_not_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv(store.WEIGHTS_DIR_ENV, str(tmp_path / "default"))
    assert store.fetch_command(["yunet"], tmp_path / "default") == "gpen weights download yunet"
    other = store.fetch_command(["yunet"], tmp_path / "other")
    assert other == f"gpen weights download yunet --weights-dir {tmp_path / 'other'}"


def test_weights_found_by_path_are_the_ones_installed(tmp_path, monkeypatch, seeded_weights_dir):
    """`gpen weights add` into the default folder, then a command from another directory
    finds the file there."""
    monkeypatch.delenv(store.WEIGHTS_DIR_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runner.invoke(
        app,
        ["weights", "add", str(seeded_weights_dir / "parsing_parsenet.pth"), "--as", "parsenet"],
    )
    monkeypatch.chdir(tmp_path)
    assert Path(runner.invoke(app, ["weights", "path", "parsenet"]).stdout.strip()).is_file()
