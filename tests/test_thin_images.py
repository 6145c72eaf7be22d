"""Thin strips (8×20000, 20000×8) with RetinaFace: no face, as YuNet says, not an OpenCV
error or a division by zero.

The detector is RetinaFace MobileNet-0.25 built and loaded by the real code, from seeded random
weights (tests/seeded.py): what it would find does not matter, as a strip this thin has no
row left at the 1000 px the official detector resizes it to; what matters is that the photo
passes through byte for byte, reported as having no face."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gpen_cli.cli import app


@pytest.mark.parametrize("shape", [(8, 20000), (20000, 8)])
def test_a_thin_strip_has_no_face_and_passes_through(
    tmp_path, tiny_checkpoint, seeded_detector_dir, shape
):
    weights = seeded_detector_dir
    photo = tmp_path / "in" / "strip.png"
    photo.parent.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    assert cv2.imwrite(str(photo), pixels)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            *("restore", str(photo), "-o", str(out), "--report", str(report)),
            *("--model", str(tiny_checkpoint), "--weights-dir", str(weights)),
            *("--detector", "retinaface-mobile", "--device", "cpu", "--mask", "rect"),
        ],
    )
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(report.read_text())["results"]
    assert entry["status"] == "no_face" and entry["error"] is None, entry
    assert (out / "strip.png").read_bytes() == photo.read_bytes()
