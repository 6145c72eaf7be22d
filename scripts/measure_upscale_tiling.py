"""Tiled against whole-image upscaling: PSNR and time for a few tile overlaps.

Runs the upsampler once on the whole photo (the official `tile_size` 0) and once per overlap
on forced tiles, and prints how far each tiled result is from the whole one. The network is
an SR checkpoint (`--checkpoint`), or by default a seeded random RRDBNet shaped as GPEN's
RealESRNet x2 (32 features, 23 blocks; random weights, as no trained ones are at hand here).

    python scripts/measure_upscale_tiling.py [--checkpoint PATH] [--image PATH]
        [--tile 128] [--overlaps 0 8 16 32 48] [--scale 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def seeded_rrdbnet(path: Path, scale: int, blocks: int = 23) -> Path:
    """A random RRDBNet with RealESRNet's shape (32 features), saved under params_ema."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(
        num_filters=32,
        num_blocks=blocks,
        scale=scale,
        shuffle_factor=4 // scale if scale < 4 else None,
    )
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument(
        "--image", type=Path, default=REPO.parent / "shared/assets/images/portrait_small.jpg"
    )
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 8, 16, 32, 48])
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()

    import cv2
    import numpy as np
    import torch

    from gpen_cli.models.upsampler import load_sr_net
    from gpen_cli.stages.upscale import Upscaler

    image = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    with tempfile.TemporaryDirectory() as folder:
        path = args.checkpoint or seeded_rrdbnet(Path(folder) / "sr.pth", args.scale)
        net = load_sr_net(path)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    whole = Upscaler(net, args.scale, device=cpu)(image)
    print(f"{args.image.name} {image.shape[1]}×{image.shape[0]}, x{args.scale}, {net.architecture}")
    print(f"whole image: {time.perf_counter() - started:.1f} s")
    for overlap in args.overlaps:
        upscaler = Upscaler(net, args.scale, device=cpu, tile=args.tile, overlap=overlap)
        started = time.perf_counter()
        tiled = upscaler(image)
        seconds = time.perf_counter() - started
        worst = int(np.abs(tiled.astype(int) - whole.astype(int)).max())
        print(
            f"tile {args.tile}, overlap {overlap:3d}: {upscaler.last_tiles} tiles, "
            f"PSNR {psnr(tiled, whole):6.2f} dB, max diff {worst:3d}, {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
