"""What a user can type or feed the CLI: every case ends in one clear line, never a traceback.

These run `gpen restore` and `gpen batch` with `--aligned` and the tiny random checkpoint, so
no detector weights are needed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gpen_cli.cli import app

SIZE = 64


def invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def write_photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    ok, data = cv2.imencode(path.suffix, pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def aligned(checkpoint: Path) -> list[object]:
    return ["--model", checkpoint, "--aligned", "--device", "cpu"]


# --------------------------------------------------------------------------- rich markup


def test_square_brackets_in_names_print_as_typed(tmp_path, tiny_checkpoint):
    bad = tmp_path / "x[draft]y.jpg"
    bad.write_bytes(b"not a photo")
    result = invoke("restore", bad, "-o", tmp_path / "out", *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    assert error_lines(result.output) == [f"error: cannot decode {bad}: not an image or corrupt"]


def test_folder_named_like_a_closing_tag_does_not_crash_batch(tmp_path, tiny_checkpoint):
    source = tmp_path / "in" / "a[" / "]"
    write_photo(source / "good.png")
    (source / "bad.png").write_bytes(b"\x89PNG broken")
    result = invoke("batch", tmp_path / "in", "-o", tmp_path / "out", *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    assert "MarkupError" not in result.output
    assert any("a[/]/bad.png" in line for line in error_lines(result.output))
    assert (tmp_path / "out" / "a[" / "]" / "good.png").is_file()


# --------------------------------------------------------------------------- --device


@pytest.mark.parametrize("device", ["mps", "xla", "vulkan", "hip", "meta", "tpu", "cuda:abc"])
def test_unsupported_device_is_refused_before_anything_runs(tmp_path, device):
    photo = write_photo(tmp_path / "a.png")
    result = invoke("restore", photo, "--device", device, "--model", tmp_path / "absent.pth")
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert line.startswith(f"error: --device {device}: not supported; use one of auto, cpu")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png"]
