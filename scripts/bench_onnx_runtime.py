"""Per-stage CPU time of the torch and onnxruntime runtimes on the seeded GPEN-BFR-256 and
ParseNet of the official references (docs/benchmarks.md, "ONNX Runtime against torch").

Run from the repository root: PYTHONPATH=. python scripts/bench_onnx_runtime.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from gpen_cli.models import load_gpen
from gpen_cli.stages.forward import GpenForward
from gpen_cli.stages.mask import ParsingMasker

FACES = 4
PASSES = 3


def cpu_seconds_per_face(call, crops) -> float:
    """Median CPU seconds of `call(crops)` over PASSES, per face."""
    times = []
    for _ in range(PASSES):
        start = time.process_time()
        call(crops)
        times.append(time.process_time() - start)
    return float(np.median(times)) / len(crops)


def main() -> None:
    sys.path.insert(0, "tests")
    import seeded

    folder = Path(tempfile.mkdtemp())
    for name in ("GPEN-BFR-256.pth", "parsing_parsenet.pth"):
        seeded.write(name, folder)
    crops = [cv2.imread(str(seeded.OFFICIAL / "astronaut_320_face00_in.png"))] * FACES
    for runtime in ("torch", "onnxruntime"):
        start = time.process_time()
        generator = load_gpen(folder / "GPEN-BFR-256.pth", fast=True)
        forward = GpenForward(generator, device="cpu", batch_size=FACES, runtime=runtime)
        masker = ParsingMasker(folder / "parsing_parsenet.pth", runtime=runtime)
        setup = time.process_time() - start
        forward(crops[:1]), masker(crops[:1])  # warm-up
        gpen = cpu_seconds_per_face(forward, crops)
        mask = cpu_seconds_per_face(masker, crops)
        print(f"{runtime}: start-up {setup:.1f} CPU s; per face: GPEN {gpen:.3f}, mask {mask:.3f}")


if __name__ == "__main__":
    main()
