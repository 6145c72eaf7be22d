"""Peak memory (RSS) of `gpen restore` on one very large photo, with and without a face.

Builds a width×height JPEG (default 12000×9000, 108 MP) of smooth noise, optionally with
the shared portrait pasted in large, and runs `gpen restore` on it in a child process with a
GPEN-64-shaped random generator and RetinaFace MobileNet-0.25 from shared/assets/weights.
Prints the child's peak RSS (its VmHWM, Linux only) next to the size of the decoded photo
(3 bytes a pixel), the figure the memory goal is stated in, and what it is above the same
command's peak on a 640×480 photo (the interpreter, PyTorch, OpenCV and the models).

With `--upscale N` the photo is also upscaled N times by a small seeded random RRDBNet
(RealESRNet's 32 features, `--sr-blocks` blocks instead of 23, so it runs in minutes on a
CPU; the tiles, and so the memory, are those of the full network's).

    python scripts/peak_rss_large_photo.py [--width 12000] [--height 9000] [--no-face]
    python scripts/peak_rss_large_photo.py --width 6000 --height 4000 --upscale 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_photo(path: Path, width: int, height: int, face: bool) -> None:
    import cv2
    import numpy as np

    small = np.random.default_rng(0).integers(60, 200, (height // 64, width // 64, 3), np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if face:
        portrait = cv2.imread(str(REPO.parent / "shared/assets/images/portrait_small.jpg"))
        side = min(height, width) // 3
        scaled = cv2.resize(portrait, (side * portrait.shape[1] // portrait.shape[0], side))
        y, x = height // 3, width // 3
        image[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=9000)
    parser.add_argument("--no-face", action="store_true")
    parser.add_argument("--upscale", type=int, default=1)
    parser.add_argument("--sr-blocks", type=int, default=1)
    args = parser.parse_args()

    import torch

    from gpen_cli.models import build_gpen

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        photo = work / "large.jpg"
        make_photo(photo, args.width, args.height, face=not args.no_face)
        checkpoint = work / "GPEN-64.pth"
        torch.manual_seed(0)
        torch.save(build_gpen(64, channel_multiplier=1, narrow=0.125).state_dict(), checkpoint)
        command = [
            sys.executable, "-c", _REPORTING_PEAK,
            "restore", str(photo), "-o", str(work / "out.jpg"),
            "--model", str(checkpoint), "--detector", "retinaface-mobile", "--device", "cpu",
            "--weights-dir", str(REPO.parent / "shared/assets/weights"), "--mask", "rect",
        ]  # fmt: skip
        if args.upscale > 1:
            from spandrel.architectures.ESRGAN import ESRGAN

            sr = work / f"realesrnet_x{args.upscale}.pth"
            torch.manual_seed(0)
            net = ESRGAN(
                num_filters=32,
                num_blocks=args.sr_blocks,
                scale=args.upscale,
                shuffle_factor=4 // args.upscale if args.upscale < 4 else None,
            )
            torch.save({"params_ema": net.state_dict()}, sr)
            command += ["--upscale", str(args.upscale), "--bg-upsampler", str(sr), "-q"]
        small = work / "small.jpg"
        make_photo(small, 640, 480, face=False)
        baseline, _ = _peak_rss_of(
            [*command[:4], str(small), "-o", str(work / "small_out.jpg"), *command[7:]]
        )
        peak, done = _peak_rss_of(command)
        decoded = args.width * args.height * 3
        print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr)
        print(
            f"{args.width}×{args.height} ({args.width * args.height / 1e6:.0f} MP), "
            f"upscale x{args.upscale}, exit {done.returncode}, "
            f"face: {not args.no_face}: peak RSS {peak / 1e9:.2f} GB = "
            f"{peak / decoded:.1f}× the decoded photo ({decoded / 1e9:.2f} GB); "
            f"{(peak - baseline) / 1e9:.2f} GB = {(peak - baseline) / decoded:.1f}× above the "
            f"{baseline / 1e9:.2f} GB of a 640×480 photo"
        )


# The child's own peak, VmHWM, written as it exits. Not ru_maxrss: a child's starts at the
# peak of the process that forked it, and this one holds the large photo it made.
_REPORTING_PEAK = """
import atexit, os, re, sys
from pathlib import Path
from gpen_cli.cli import app
def report():
    status = Path("/proc/self/status").read_text()
    Path(os.environ["PEAK_RSS_FILE"]).write_text(re.search(r"VmHWM:\\s+(\\d+)", status)[1])
atexit.register(report)
app(prog_name="gpen")
"""


def _peak_rss_of(command: list[str]) -> tuple[int, subprocess.CompletedProcess]:
    """Peak RSS in bytes of `command`, run to its end in a child process."""
    with tempfile.NamedTemporaryFile() as peak:
        env = {**os.environ, "PEAK_RSS_FILE": peak.name}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        return int(Path(peak.name).read_text()) * 1024, done


if __name__ == "__main__":
    main()
