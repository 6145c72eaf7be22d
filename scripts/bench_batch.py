"""Faces per second of `gpen batch` against `gpen restore` run file by file.

Both restore the same folder (the shared photos copied a few times) with the same model
(a GPEN-BFR-256-shaped generator with random weights, saved as the official checkpoints
are), the same detector (RetinaFace MobileNet-0.25 from shared/assets/weights) and the same
batch size. File by file means a fresh `gpen restore` process per photo, as a user looping
over a folder in a shell would run it; the batch is one `gpen batch` process. Both times are
wall-clock times of the whole processes, model loading included. For reference it also times
one `gpen restore` process given every photo, which isolates what the pipeline's overlap and
cross-photo batches gain from what starting one process instead of many gains.

    python scripts/bench_batch.py [--copies 2] [--batch-size 4] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO_SUFFIXES = (".jpg", ".png")


def shared_dir() -> Path:
    return Path(os.environ.get("GPEN_SHARED_DIR", REPO.parent / "shared"))


def save_random_gpen256(path: Path) -> Path:
    import torch

    from gpen_cli.weights.registry import MODELS

    torch.save(MODELS["GPEN-BFR-256"].random_init(0).state_dict(), path)
    return path


def copy_photos(images: Path, folder: Path, copies: int) -> list[Path]:
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    copied = []
    for copy in range(copies):
        for photo in photos:
            target = folder / f"copy{copy}" / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, target)
            copied.append(target)
    return copied


def gpen(*args: object) -> float:
    """Run one `gpen` process; its wall-clock seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "gpen_cli", *map(str, args)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    return seconds


def faces_in(report: Path) -> int:
    return json.loads(report.read_text())["summary"]["faces"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of the shared photos")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="gpen batch --workers")
    args = parser.parse_args()

    weights = shared_dir() / "assets" / "weights"
    images = shared_dir() / "assets" / "images"
    if not (weights / "detection_mobilenet0.25_Final.pth").is_file() or not images.is_dir():
        raise SystemExit(f"shared data not found under {shared_dir()} (set GPEN_SHARED_DIR)")

    with tempfile.TemporaryDirectory(prefix="gpen-bench-batch-") as temporary:
        tmp = Path(temporary)
        checkpoint = save_random_gpen256(tmp / "GPEN-256-random.pth")
        photos = copy_photos(images, tmp / "photos", args.copies)
        common = [
            "--model", checkpoint, "--weights-dir", weights, "--detector", "retinaface-mobile",
            "--device", args.device, "--batch-size", args.batch_size, "--mask", "rect", "-q",
        ]  # fmt: skip
        # Warm the OS file cache so neither side pays for the first cold import.
        subprocess.run([sys.executable, "-c", "import torch, cv2, facexlib"], check=True)

        workers = ["--workers", args.workers] if args.workers else []
        batch_report = tmp / "batch.json"
        batch_seconds = gpen(
            "batch", tmp / "photos", "-o", tmp / "batch", *common, *workers,
            "--report", batch_report,
        )  # fmt: skip
        batch_faces = faces_in(batch_report)
        inner = json.loads(batch_report.read_text())

        # For reference: `gpen restore` given every photo at once (one process, no overlap);
        # with no -o it writes NAME_gpen.EXT beside each copy, which the batch has read already.
        together_report = tmp / "together.json"
        together_seconds = gpen("restore", *photos, *common, "--report", together_report)
        together_faces = faces_in(together_report)

        file_seconds, file_faces = 0.0, 0
        for index, photo in enumerate(photos):
            report = tmp / f"restore{index}.json"
            output = tmp / "single" / photo.relative_to(tmp / "photos")
            file_seconds += gpen("restore", photo, "-o", output, *common, "--report", report)
            file_faces += faces_in(report)

    batch_rate, file_rate = batch_faces / batch_seconds, file_faces / file_seconds
    print(f"photos: {len(photos)} ({args.copies} copies of {images})")
    print(f"model: GPEN-BFR-256 shape, random weights; batch size {args.batch_size}")
    print(f"gpen restore, file by file: {file_faces} faces in {file_seconds:.1f} s = "
          f"{file_rate:.2f} faces/s")  # fmt: skip
    print(f"gpen batch:                 {batch_faces} faces in {batch_seconds:.1f} s = "
          f"{batch_rate:.2f} faces/s (inside the run, models loaded: "
          f"{inner['faces_per_second']:.2f} faces/s)")  # fmt: skip
    print(f"ratio batch / file by file: {batch_rate / file_rate:.2f}x")
    together_rate = together_faces / together_seconds
    print(f"for reference, gpen restore with every photo in one process: {together_faces} "
          f"faces in {together_seconds:.1f} s = {together_rate:.2f} faces/s "
          f"(batch / that: {batch_rate / together_rate:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
