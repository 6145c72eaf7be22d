"""Messages that said something false: each case now says what is so, in one line."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, features
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.stages.load import READABLE_EXTENSIONS


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


def aligned(checkpoint: Path) -> list[object]:
    return ["--model", checkpoint, "--aligned", "--device", "cpu"]


def pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def write_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels())
    return path


def hashes(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_the_same_photo_named_twice_is_restored_once(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_photo(tmp_path / "a.jpg")
    report = tmp_path / "report.json"
    result = invoke(
        "restore", "a.jpg", "./a.jpg", tmp_path / "a.jpg", *aligned(tiny_checkpoint),
        "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "meanwhile" not in result.output
    (entry,) = json.loads(report.read_text())["results"]
    assert entry["status"] == "ok" and entry["input"] == "a.jpg"
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["a.jpg", "a_gpen.jpg", "report.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_not_called_an_empty_file(tmp_path, tiny_checkpoint):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    result = invoke("restore", fifo, "-o", tmp_path / "out", *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    assert "x.jpg: a named pipe (FIFO), not an image file" in result.output
    assert "empty file" not in result.output


def test_a_weights_folder_that_is_a_file_is_said_so(tmp_path):
    blocker = tmp_path / "weights"
    blocker.write_text("not a folder")
    photo = write_photo(tmp_path / "a.jpg")
    result = invoke("restore", photo, "--device", "cpu", env={"GPEN_WEIGHTS_DIR": str(blocker)})
    assert result.exit_code == 2, result.output
    assert f"the weights folder {blocker} ($GPEN_WEIGHTS_DIR) is a file, not a folder" in (
        " ".join(result.output.split())
    )
    assert "File exists" not in result.output and blocker.read_text() == "not a folder"


def test_a_checkpoint_path_that_is_a_folder_is_said_so(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    photo = write_photo(tmp_path / "a.jpg")
    result = invoke("restore", photo, "--model", folder, "--aligned", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert f"{folder} is a folder, not a checkpoint file" in result.output
    assert "not found" not in result.output and "no such file" not in result.output


def test_bench_images_naming_a_file_is_said_so(tmp_path, tiny_checkpoint):
    photo = write_photo(tmp_path / "a.jpg")
    result = invoke("bench", "--images", photo, "--model", tiny_checkpoint, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert f"--images {photo}: a file, not a folder" in result.output
    assert "no such folder" not in result.output


def test_bg_upsampler_without_upscale_is_said_to_do_nothing(tmp_path, tiny_checkpoint):
    photo = write_photo(tmp_path / "a.jpg")
    options = [*aligned(tiny_checkpoint), "--bg-upsampler", "none", "-o", tmp_path / "out"]
    result = invoke("restore", photo, *options)
    assert result.exit_code == 0, result.output
    assert "--bg-upsampler none does nothing without --upscale 2 or 4" in result.output
    quiet = invoke("restore", photo, *options, "--overwrite", "--quiet")
    assert quiet.exit_code == 0 and quiet.output == "", quiet.output


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_batch_restores_the_avif_photos_that_restore_reads(tmp_path, tiny_checkpoint):
    assert ".avif" in READABLE_EXTENSIONS  # the one list batch scans for
    source = tmp_path / "in" / "p.avif"
    source.parent.mkdir()
    Image.fromarray(pixels()).save(source)
    single = invoke("restore", source, "-o", tmp_path / "one", *aligned(tiny_checkpoint))
    assert single.exit_code == 0 and (tmp_path / "one" / "p.png").is_file(), single.output
    result = invoke("batch", source.parent, "-o", tmp_path / "out", *aligned(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["p.png"]


def _http_server() -> tuple[socket.socket, threading.Thread]:
    """A local server that answers as a web server does, not as Ray's gRPC."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_an_address_where_something_else_answers_is_one_line_at_once():
    pytest.importorskip("ray", reason="the Ray engine needs Ray")
    from gpen_cli.batch.ray_engine import check_reachable
    from gpen_cli.core.errors import GpenError

    server, thread = _http_server()
    with server:
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(GpenError, match="something answers there, but not a Ray cluster"):
            check_reachable(address, timeout=5)
        thread.join(timeout=5)


def test_a_ray_that_does_not_start_leaves_no_output_folder(
    tmp_path, tiny_checkpoint, seeded_detector_dir
):
    pytest.importorskip("ray", reason="the Ray engine needs Ray")
    # The driver checks the detector's weights file even for aligned crops.
    write_photo(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"
    result = invoke(
        "batch", tmp_path / "in", "-o", out, "--engine", "ray", "--address", "127.0.0.1:1",
        *aligned(tiny_checkpoint), "--detector", "retinaface-mobile", "--mask", "rect",
        "--weights-dir", seeded_detector_dir,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no Ray cluster answers there" in result.output
    assert not out.exists()
