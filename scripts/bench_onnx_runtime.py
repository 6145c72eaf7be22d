"""Per-stage CPU-seconds and wall of the torch and onnxruntime runtimes on seeded GPEN-BFR
weights (256: the official references'; 512: the registry's layout, seeded) and ParseNet
(docs/benchmarks.md, "ONNX Runtime against torch"). Timings do not depend on weight values.

Run from the repository root: PYTHONPATH=. python scripts/bench_onnx_runtime.py 256 512
Start-up is timed twice per runtime: with an empty export cache (cold) and again (warm).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from gpen_cli.models import load_gpen
from gpen_cli.models.loading import random_gpen
from gpen_cli.stages.forward import GpenForward
from gpen_cli.stages.mask import ParsingMasker

FACES = 2
PASSES = 3


def timed(call, *args) -> tuple[float, float, object]:
    """(CPU s, wall s, result) of `call(*args)`."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = call(*args)
    return time.process_time() - cpu, time.perf_counter() - wall, result


def per_face(call, crops) -> str:
    """Median CPU and wall seconds of `call(crops)` over PASSES, per face."""
    runs = np.array([timed(call, crops)[:2] for _ in range(PASSES)])
    cpu, wall = np.median(runs, axis=0) / len(crops)
    return f"{cpu:.2f} CPU s, {wall:.2f} s wall"


def start(runtime: str, gpen_file: Path, parsing_file: Path | None):
    generator = load_gpen(gpen_file, fast=True)
    forward = GpenForward(generator, device="cpu", batch_size=FACES, runtime=runtime)
    masker = parsing_file and ParsingMasker(parsing_file, runtime=runtime)
    return forward, masker


def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as scratch:  # the weights and the export cache
        measure(sizes, Path(scratch))


def measure(sizes: list[int], folder: Path) -> None:
    sys.path.insert(0, "tests")
    import seeded

    os.environ["XDG_CACHE_HOME"] = str(folder / "cache")  # starts empty: the cold start
    seeded.write("GPEN-BFR-256.pth", folder)
    seeded.write("parsing_parsenet.pth", folder)
    torch.save(random_gpen(512, 512, channel_multiplier=2).state_dict(), folder / "512.pth")
    face = cv2.imread(str(seeded.OFFICIAL / "astronaut_320_face00_in.png"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load {os.getloadavg()}")
    for size in sizes:
        gpen_file = folder / ("GPEN-BFR-256.pth" if size == 256 else "512.pth")
        parsing = folder / "parsing_parsenet.pth" if size == sizes[0] else None
        crops = [cv2.resize(face, (size, size))] * FACES
        for runtime in ("torch", "onnxruntime"):
            cold = timed(start, runtime, gpen_file, parsing)
            warm = timed(start, runtime, gpen_file, parsing)
            forward, masker = warm[2]
            forward(crops[:1])  # warm-up
            line = f"GPEN-{size} {runtime}: start-up cold {cold[0]:.1f} CPU s {cold[1]:.1f} s"
            line += f" wall, warm {warm[0]:.1f} CPU s {warm[1]:.1f} s wall; per face: forward "
            line += per_face(forward, crops)
            if masker:
                masker(crops[:1])
                line += "; mask " + per_face(masker, [cv2.resize(face, (512, 512))] * FACES)
            print(line, f"(load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main([int(size) for size in sys.argv[1:]] or [256])
