"""File names near the file system's limit (255 bytes): temporary names fit wherever the final
name fits, and a final name that cannot fit is one line before any work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.io.atomic import (
    is_partial_file,
    name_max,
    partial_path,
    remove_partials_of,
    write_atomically,
)


def invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def long_name(folder: Path, total: int, suffix: str = ".jpg") -> str:
    """A name of `total` bytes (not more than this folder allows, so it can be created)."""
    assert total <= name_max(folder)
    return "é" * ((total - len(suffix)) // 2) + "a" * ((total - len(suffix)) % 2) + suffix


def write_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def aligned(checkpoint: Path) -> list[object]:
    return ["--model", checkpoint, "--aligned", "--device", "cpu"]


def test_a_255_byte_name_is_written_and_its_partials_are_found(tmp_path):
    target = tmp_path / long_name(tmp_path, 255)
    write_atomically(target, b"photo")
    assert target.read_bytes() == b"photo"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]  # no partial left

    temporary = partial_path(target)
    assert len(temporary.name.encode()) <= 255 and is_partial_file(temporary)
    temporary.write_bytes(b"half")
    other = tmp_path / long_name(tmp_path, 254)
    theirs = partial_path(other)
    theirs.write_bytes(b"another target's")
    assert remove_partials_of(target) == [temporary]
    assert theirs.exists() and not temporary.exists()
    assert remove_partials_of(other) == [theirs]


def test_restore_of_a_long_name_writes_its_result(tmp_path, tiny_checkpoint):
    name = long_name(tmp_path, 250)  # NAME_gpen.jpg is then 255 bytes
    photo = write_photo(tmp_path / "in" / name)
    result = invoke("restore", photo, *aligned(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    output = photo.with_name(f"{photo.stem}_gpen.jpg")
    assert sorted(path.name for path in photo.parent.iterdir()) == sorted([name, output.name])
    assert cv2.imread(str(output)) is not None


def test_restore_refuses_an_output_name_that_cannot_exist_before_any_work(
    tmp_path, tiny_checkpoint
):
    photo = write_photo(tmp_path / "in" / long_name(tmp_path, 252))  # NAME_gpen.jpg: 257
    before = hashes(tmp_path)
    result = invoke("restore", photo, *aligned(tiny_checkpoint))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "257 bytes, longer than the 255" in result.output
    assert "Traceback" not in result.output
    assert hashes(tmp_path) == before


def test_batch_restores_a_255_byte_name(tmp_path, tiny_checkpoint):
    name = long_name(tmp_path, 255)
    write_photo(tmp_path / "in" / name)
    write_photo(tmp_path / "in" / "short.jpg")
    out = tmp_path / "out"
    result = invoke("batch", tmp_path / "in", "-o", out, *aligned(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == sorted([name, "short.jpg"])
