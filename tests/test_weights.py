"""The registry, where the weights folder is, and the `gpen weights` commands (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
import seeded
from conftest import real_detectors_dir
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.core.errors import GpenError
from gpen_cli.models import build_gpen
from gpen_cli.weights import download, registry, store

runner = CliRunner()
KINDS = {"gpen", "detector", "parsing", "landmarks", "upsampler", "recognition", "assessment"}


def test_registry_entries_are_consistent():
    filenames = [spec.filename for spec in registry.MODELS.values()]
    assert len(set(filenames)) == len(filenames)
    for name, spec in registry.MODELS.items():
        assert name == spec.name
        assert spec.kind in KINDS
        assert spec.url.startswith("https://")
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.description
    assert {s.kind for s in registry.MODELS.values()} == KINDS


def test_gpen_configs_match_the_official_layouts():
    layouts = json.loads((seeded.OFFICIAL / "gpen_state_dict_layouts.json").read_text())
    gpen_specs = {name: s for name, s in registry.MODELS.items() if s.kind == "gpen"}
    assert set(gpen_specs) == set(layouts)
    for name, spec in gpen_specs.items():
        assert dict(spec.config) == layouts[name]["config"], name


def test_known_hashes_and_sizes_are_the_published_files_and_verify_says_so():
    """The registry's sizes and sha256 are those of the real detector files, and `gpen weights
    verify` passes them: the one test here whose point is the downloaded files themselves."""
    folder = real_detectors_dir()
    for name in ("retinaface-mobile", "yunet"):
        spec = registry.get_spec(name)
        path = folder / spec.filename
        assert path.stat().st_size == spec.size_bytes, name
        assert store.sha256_file(path) == spec.sha256, name
    result = runner.invoke(
        app, ["weights", "verify", "retinaface-mobile", "yunet", "--weights-dir", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count(" ok ") == 2


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000  # spans several read chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert store.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_spec_config_cannot_be_edited_in_place():
    with pytest.raises(TypeError):
        registry.get_spec("GPEN-BFR-512").config["size"] = 1024  # type: ignore[index]


def test_unknown_model_lists_the_known_names():
    with pytest.raises(GpenError) as caught:
        registry.get_spec("GPEN-BFR-9000")
    message = str(caught.value)
    assert "GPEN-BFR-9000" in message
    assert all(name in message for name in registry.MODELS)


def test_weights_dir_resolution_order(tmp_path, monkeypatch):
    """--weights-dir > $GPEN_WEIGHTS_DIR > weights_dir in the config file > the user data
    folder; the current directory plays no part."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()  # a ./weights is no longer a place weights are read from
    monkeypatch.delenv(store.WEIGHTS_DIR_ENV, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))

    assert store.resolve_weights_dir_and_source() == (
        data / "gpen-cli" / "weights",
        "the user data folder",
    )
    config = tmp_path / "conf" / "config.toml"
    config.parent.mkdir()
    config.write_text('weights_dir = "my-weights"\n')
    monkeypatch.setenv("GPEN_CONFIG", str(config))
    assert store.resolve_weights_dir_and_source() == (
        tmp_path / "conf" / "my-weights",  # relative to the config file
        f"weights_dir in {config}",
    )
    monkeypatch.setenv(store.WEIGHTS_DIR_ENV, str(tmp_path / "from-env"))
    assert store.resolve_weights_dir_and_source() == (tmp_path / "from-env", "$GPEN_WEIGHTS_DIR")
    assert store.resolve_weights_dir(Path("explicit")) == tmp_path / "explicit"
    monkeypatch.setenv(store.WEIGHTS_DIR_ENV, "")  # empty counts as unset
    assert store.resolve_weights_dir() == tmp_path / "conf" / "my-weights"


def test_the_weights_folder_is_the_same_from_any_directory(tmp_path, monkeypatch):
    """A file installed once is found by `gpen weights path` run from anywhere."""
    monkeypatch.delenv(store.WEIGHTS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    found = set()
    for where in (tmp_path, tmp_path / "elsewhere"):
        where.mkdir(exist_ok=True)
        (where / "weights").mkdir()
        monkeypatch.chdir(where)
        found.add(runner.invoke(app, ["weights", "path", "yunet"]).stdout.strip())
    assert found == {str(tmp_path / "data" / "gpen-cli" / "weights" / "face_detection_yunet.onnx")}


def test_weight_path_is_folder_plus_filename(tmp_path):
    assert store.weight_path("yunet", tmp_path) == tmp_path / "face_detection_yunet.onnx"


def test_mirror_base_url(monkeypatch):
    spec = registry.get_spec("GPEN-BFR-512")
    assert download.source_url(spec) == spec.url
    monkeypatch.setenv(download.BASE_URL_ENV, "http://mirror.local/gpen/")
    assert download.source_url(spec) == "http://mirror.local/gpen/GPEN-BFR-512.pth"


def _install_tiny(monkeypatch, folder: Path, content: bytes, sha256_of: bytes) -> None:
    spec = replace(
        registry.get_spec("yunet"),
        name="tiny",
        filename="tiny.onnx",
        size_bytes=None,
        sha256=hashlib.sha256(sha256_of).hexdigest(),
    )
    monkeypatch.setitem(registry.MODELS, "tiny", spec)
    (folder / "tiny.onnx").write_bytes(content)


def test_cli_list_json_reports_presence_and_the_folder(tmp_path, monkeypatch):
    _install_tiny(monkeypatch, tmp_path, b"abc", b"abc")
    result = runner.invoke(app, ["weights", "list", "--weights-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weights_dir"] == str(tmp_path)
    assert report["source"] == "--weights-dir"
    by_name = {row["name"]: row for row in report["models"]}
    assert set(by_name) == set(registry.MODELS)
    assert by_name["tiny"]["present"] is True and by_name["tiny"]["size_bytes"] == 3
    assert by_name["GPEN-BFR-512"]["present"] is False
    assert by_name["GPEN-BFR-512"]["path"] == str(tmp_path / "GPEN-BFR-512.pth")


def test_cli_list_table_names_the_folder_and_every_model(tmp_path):
    result = runner.invoke(app, ["weights", "list", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert str(tmp_path) in result.stdout
    for name in registry.MODELS:
        assert name in result.stdout


def test_cli_path_prints_the_bare_path(tmp_path):
    result = runner.invoke(app, ["weights", "path", "GPEN-BFR-256", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout == f"{tmp_path / 'GPEN-BFR-256.pth'}\n"


def test_cli_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(store.WEIGHTS_DIR_ENV, str(tmp_path))
    result = runner.invoke(app, ["weights", "path", "parsenet"])
    assert result.stdout.strip() == str(tmp_path / "parsing_parsenet.pth")


@pytest.mark.parametrize(
    "args",
    [["path", "nope"], ["download", "nope"], ["verify", "nope"], ["download"]],
)
def test_cli_usage_errors_are_one_line_exit_2(args, tmp_path):
    result = runner.invoke(app, ["weights", *args, "--weights-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "args", "exit_code"),
    [
        (b"good", ["tiny"], 0),
        (b"good", [], 0),  # other models missing: not a failure when not named
        (b"bad!", ["tiny"], 1),
        (b"bad!", [], 1),
        (None, ["tiny"], 1),  # named and missing
    ],
)
def test_cli_verify_exit_codes(tmp_path, monkeypatch, content, args, exit_code):
    _install_tiny(monkeypatch, tmp_path, content or b"", b"good")
    if content is None:
        (tmp_path / "tiny.onnx").unlink()
    command = ["weights", "verify", *args, "--weights-dir", str(tmp_path), "--json"]
    result = runner.invoke(app, command)
    assert result.exit_code == exit_code, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is (exit_code == 0)
    status = {row["name"]: row["status"] for row in report["models"]}["tiny"]
    assert status == {b"good": "ok", b"bad!": "mismatch", None: "missing"}[content]


# --------------------------------------------------------------------------- GPEN structure


def _gpen_verify(name: str, folder: Path) -> dict:
    result = runner.invoke(app, ["weights", "verify", name, "--weights-dir", str(folder), "--json"])
    row = json.loads(result.stdout)["models"][0]
    return {"exit_code": result.exit_code, **row}


def test_verify_fails_a_tiny_file_named_like_a_generator(tmp_path):
    (tmp_path / "GPEN-BFR-512.pth").write_bytes(os.urandom(1024))
    row = _gpen_verify("GPEN-BFR-512", tmp_path)
    assert row["exit_code"] == 1
    assert row["status"] == "mismatch"
    assert "not a readable PyTorch checkpoint" in row["detail"]


@pytest.fixture()
def tiny_gpen_spec(monkeypatch):
    """A registry entry for the tests' GPEN-64 layout, without a published hash."""
    spec = replace(
        registry.get_spec("GPEN-BFR-256"),
        name="GPEN-BFR-64",
        filename="GPEN-BFR-64.pth",
        config={"size": 64, "channel_multiplier": 1, "narrow": 0.125},
    )
    monkeypatch.setitem(registry.MODELS, spec.name, spec)
    return spec


def test_verify_checks_layout_and_values_where_no_hash_is_published(
    tmp_path, tiny_checkpoint, tiny_gpen_spec
):
    import torch

    path = tmp_path / tiny_gpen_spec.filename
    path.write_bytes(tiny_checkpoint.read_bytes())
    row = _gpen_verify("GPEN-BFR-64", tmp_path)
    assert (row["exit_code"], row["status"], row["checksum_source"]) == (0, "ok", "structure")

    state = torch.load(tiny_checkpoint, weights_only=True)
    state["generator.to_rgb1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    torch.save(state, path)
    row = _gpen_verify("GPEN-BFR-64", tmp_path)
    assert (row["exit_code"], row["status"]) == (1, "mismatch")
    assert row["detail"] == "NaN or infinite values in generator.to_rgb1.conv.weight"

    # A valid generator, but another layout than its name says.
    torch.save(build_gpen(64, channel_multiplier=2, narrow=0.125).state_dict(), path)
    row = _gpen_verify("GPEN-BFR-64", tmp_path)
    assert row["status"] == "mismatch" and "not GPEN-BFR-64" in row["detail"]
