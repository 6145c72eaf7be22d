"""Photos over the detector's 1500 px: banded float shrink, faces pasted into the photo itself.

The memory itself is measured by scripts/peak_rss_large_photo.py on a 108 MP photo; these
check that the frugal paths give the same file as the plain ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import photo_path
from typer.testing import CliRunner

from gpen_cli.cli import app


@pytest.mark.slow
def test_pasting_into_the_input_writes_the_same_file_as_pasting_into_a_copy(
    tmp_path, pipeline_weights_dir, seeded_weights_dir
):
    """`--compare` keeps the input intact (a copy is pasted into); without it the faces go
    into the decoded photo itself. Same PNG either way, on a photo detected at 1000 px."""
    model = str(seeded_weights_dir / "GPEN-BFR-256.pth")
    portrait = cv2.imread(str(photo_path("portrait")), cv2.IMREAD_COLOR)
    source = tmp_path / "big.png"
    cv2.imwrite(str(source), cv2.resize(portrait, None, fx=5, fy=5))  # 1600×1600
    written = {}
    for flags in ([], ["--compare"]):
        folder = tmp_path / ("compare" if flags else "plain")
        result = CliRunner().invoke(
            app,
            [
                "restore", str(source), "-o", str(folder), "--model", model,
                "--detector", "retinaface-mobile", "--weights-dir", str(pipeline_weights_dir),
                "--mask", "rect", *flags,
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        written[bool(flags)] = cv2.imread(str(folder / "big.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written[False], written[True])
    assert not np.array_equal(written[False], cv2.imread(str(source), cv2.IMREAD_UNCHANGED))


# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak (pytest's), VmHWM at 0.
_DECODE_PEAK = """
import re, sys
from pathlib import Path
from gpen_cli.stages.load import load_image
def peak_kib():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
before = peak_kib()
loaded = load_image(sys.argv[1])
print((peak_kib() - before) * 1024 / loaded.pixels.nbytes)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
def test_a_large_jpeg_is_decoded_into_one_photo_worth_of_memory(tmp_path):
    """Decoding a 24 MP JPEG raises the peak RSS by the photo's size, not twice it (a decoder
    buffer copied into NumPy's), measured in a process of its own."""
    small = np.random.default_rng(0).integers(0, 256, (63, 94, 3), np.uint8)
    source = tmp_path / "large.jpg"
    cv2.imwrite(str(source), cv2.resize(small, (6000, 4000)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_PEAK, str(source)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.3, f"peak RSS rose by {float(done.stdout):.2f}× the photo"
