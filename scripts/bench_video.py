"""`gpen video` measured: speed against `gpen batch`, memory against length, landmark jitter.

    python scripts/bench_video.py speed  [--frames 40] [--batch-size 4] [--rounds 2]
    python scripts/bench_video.py memory [--short 30] [--long 300]
    python scripts/bench_video.py jitter [--frames 60] [--shift 0.25]

speed   A 1280×720 film of the shared group and portrait photos side by side (several faces
        a frame, H.264), restored by `gpen video`, and the same frames as PNG files restored
        by `gpen batch`: both processes timed whole (model loading included), with the same
        GPEN-BFR-256-shaped random generator, RetinaFace MobileNet and batch size.
        It reports frames/s and faces/s for both, the best of alternated rounds.
memory  Peak RSS of a `gpen video` process (os.wait4) on a 640×360 film of N frames, for a
        short and a long film; flat memory means the two are alike.
jitter  A still portrait moved by random sub-pixel amounts plus noise, each frame. The ideal
        aligned crop follows the known shift exactly; what the crop centre does beyond that
        is jitter. Measured through the restorer's own prepare step, smoothing on and off.

The films are made by tests/videoclips.py from ../shared/assets (GPEN_SHARED_DIR elsewhere).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_batch import save_random_gpen256, shared_dir  # noqa: E402
from videoclips import face_picture, faceless_picture, make_film, shifted  # noqa: E402


def weights_dir() -> Path:
    return shared_dir() / "assets" / "weights"


def images() -> Path:
    return shared_dir() / "assets" / "images"


def gpen(*args: object) -> tuple[float, float]:
    """Run one `gpen` process: its wall-clock seconds and peak RSS in MiB."""
    command = [sys.executable, "-m", "gpen_cli", *map(str, args)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def common(checkpoint: Path, batch_size: int) -> list[object]:
    return [
        "--model", checkpoint, "--weights-dir", weights_dir(), "--detector", "retinaface-mobile",
        "--device", "cpu", "--batch-size", batch_size, "--mask", "rect", "--quiet",
    ]  # fmt: skip


def wide_picture(width: int, height: int) -> np.ndarray:
    """The group photo and the portrait side by side on a gradient, width × height."""
    canvas = faceless_picture((width, height))
    left = face_picture(images() / "group_small.jpg", (width // 2, height))
    right = face_picture(images() / "portrait_small.jpg", (width // 2, height))
    canvas[:, : width // 2], canvas[:, width // 2 : 2 * (width // 2)] = left, right
    return canvas


def count_faces(picture: np.ndarray) -> int:
    from gpen_cli.weights.download import load_model

    return len(load_model("retinaface-mobile", "detector", weights_dir()).detect(picture))


def speed(args: argparse.Namespace, work: Path) -> None:
    checkpoint = save_random_gpen256(work / "GPEN-random-256.pth")
    picture = wide_picture(1280, 720)
    film = work / "film.mp4"
    frames = make_film(film, [picture] * args.frames, codec="libx264", audio="aac", jitter=0.5)
    pngs = work / "png"
    pngs.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(pngs / f"frame{index:04d}.png"), frame)
    faces = count_faces(frames[0]) * args.frames
    options = common(checkpoint, args.batch_size)
    # Alternated, best of `rounds`: on a shared machine the minimum is the least disturbed.
    video_s = batch_s = float("inf")
    for _ in range(args.rounds):
        video_s = min(
            video_s, gpen("video", film, "-o", work / "out.mp4", *options, "--overwrite")[0]
        )
        batch_s = min(
            batch_s, gpen("batch", pngs, "-o", work / "out_png", *options, "--overwrite")[0]
        )
    print(
        f"{args.frames} frames of 1280x720, {faces} faces, GPEN-256 random, batch {args.batch_size}"
    )
    for name, seconds in (("gpen video", video_s), ("gpen batch (PNG)", batch_s)):
        print(
            f"{name:18} {seconds:6.1f} s  {args.frames / seconds:5.2f} frames/s  "
            f"{faces / seconds:5.2f} faces/s"
        )


def memory(args: argparse.Namespace, work: Path) -> None:
    import torch

    from gpen_cli.models import build_gpen

    torch.manual_seed(0)
    checkpoint = work / "GPEN-random-64.pth"
    torch.save(build_gpen(64, channel_multiplier=1, narrow=0.125).state_dict(), checkpoint)
    picture = wide_picture(640, 360)
    for frames in (args.short, args.long):
        film = work / f"film{frames}.mp4"
        make_film(film, [picture] * frames, codec="libx264", audio="aac", jitter=0.5)
        seconds, peak = gpen("video", film, "-o", work / f"out{frames}.mp4", *common(checkpoint, 4))
        print(f"{frames:4d} frames of 640x360: peak RSS {peak:7.1f} MiB ({seconds:.1f} s)")


def jitter(args: argparse.Namespace, work: Path) -> None:
    import torch

    from gpen_cli.pipeline.restorer import FaceRestorer
    from gpen_cli.video.smoothing import smoothed_landmarks

    class Identity(torch.nn.Module):
        size = 512

        def forward(self, x):
            return x

    picture = face_picture(images() / "portrait_small.jpg", (418, 520))
    rng = np.random.default_rng(1)
    shifts = rng.uniform(-args.shift, args.shift, (args.frames, 2))
    frames = [shifted(picture, dx, dy, 3.0, i) for i, (dx, dy) in enumerate(shifts)]
    restorer = FaceRestorer(
        Identity(), "retinaface-mobile", weights_dir=weights_dir(), device="cpu", mask="rect"
    )
    centre = np.array([256.0, 256.0, 1.0])
    for label, smooth in (("without smoothing", False), ("with smoothing", True)):
        centres = []
        with smoothed_landmarks(restorer, 25.0) if smooth else nullcontext():
            for frame in frames:
                prepared = restorer.prepare(frame)
                centres.append(prepared.alignments[0].inverse @ centre)
        centres = np.array(centres)
        moves = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        # What the crop does beyond following the photo's own (known) shift.
        beyond = np.linalg.norm(np.diff(centres - shifts, axis=0), axis=1)
        print(
            f"{label:18} crop centre moves {moves.mean():.3f} px a frame "
            f"(95th percentile {np.percentile(moves, 95):.3f}); "
            f"beyond the photo's shift {beyond.mean():.3f} px"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "memory", "jitter"))
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="speed: runs of each, best kept")
    parser.add_argument("--short", type=int, default=30)
    parser.add_argument("--long", type=int, default=300)
    parser.add_argument("--shift", type=float, default=0.25, help="jitter: largest shift, px")
    args = parser.parse_args()
    args.frames = args.frames or {"speed": 40, "jitter": 60}.get(args.what, 0)
    with tempfile.TemporaryDirectory() as folder:
        {"speed": speed, "memory": memory, "jitter": jitter}[args.what](args, Path(folder))


if __name__ == "__main__":
    main()
