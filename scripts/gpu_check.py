"""One short check of the CUDA paths, for anyone with a GPU: it installs nothing.

    python scripts/gpu_check.py                 # GPEN-512 + ParseNet on cuda
    python scripts/gpu_check.py --device cpu --size 256 --faces 1   # the same steps, on a CPU

It runs `gpen doctor`, then `gpen bench` on random aligned crops with GPEN at --size and the
parsing mask (seeded random weights where the real ones are absent: the timings do not depend
on the values) in FP32, with --half and with --compile, and compares the half-precision output
with the FP32 one on the same crops (PSNR, at least 40 dB expected). One table at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np

CONFIGURATIONS = {"fp32": [], "half": ["--half"], "compile": ["--compile"]}
HALF_PSNR_BAR_DB = 40.0


def gpen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpen_cli", *args], capture_output=True, text=True)


def bench(device: str, size: int, faces: int, extra: list[str]) -> dict:
    """The fastest row `gpen bench --json` gives for this configuration (its baseline aside)."""
    done = gpen(
        "bench", "--size", str(size), "-b", str(faces), "--faces", str(faces), "--repeats", "2",
        "--mask", "parsing", "--device", device, "--json", *extra,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    results = json.loads(done.stdout)["results"]
    return min(results[1:] or results, key=lambda row: row["s_per_face"])


def half_psnr(device: str, size: int, faces: int, seed: int = 0) -> float:
    """PSNR of the half-precision generator's crops against FP32's, same seeded weights."""
    import torch

    from gpen_cli.models import build_gpen
    from gpen_cli.stages.forward import GpenForward

    torch.manual_seed(seed)
    model = build_gpen(size).eval()
    crops = list(np.random.default_rng(seed).integers(0, 256, (faces, size, size, 3), np.uint8))
    full = GpenForward(model, device=device, batch_size=faces)(crops)
    half = GpenForward(model, device=device, batch_size=faces, half=True)(crops)
    mse = np.mean([(a.astype(np.float64) - b) ** 2 for a, b in zip(full, half, strict=True)])
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def table(rows: dict[str, dict], psnr: float) -> list[str]:
    lines = [f"{'configuration':<14}{'s/face':>9}{'faces/s':>9}{'GPEN s/face':>13}  note"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"{name:<14}{'-':>9}{'-':>9}{'-':>13}  {row['error'][:60]}")
            continue
        note = "compiled" if row.get("compiled") else ("not compiled" if name == "compile" else "")
        lines.append(
            f"{name:<14}{row['s_per_face']:9.3f}{row['faces_per_s']:9.2f}"
            f"{row['forward_s_per_face']:13.4f}  {row['dtype']} b{row['batch_size']} {note}"
        )
    verdict = "ok" if psnr >= HALF_PSNR_BAR_DB else f"BELOW {HALF_PSNR_BAR_DB:.0f} dB"
    lines.append(f"half against fp32 (GPEN crops): {psnr:.1f} dB PSNR ({verdict})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--faces", type=int, default=4)
    args = parser.parse_args()
    doctor = gpen("doctor")
    print(doctor.stdout.rstrip())
    rows = {
        name: bench(args.device, args.size, args.faces, extra)
        for name, extra in CONFIGURATIONS.items()
    }
    psnr = half_psnr(args.device, args.size, args.faces)
    print("\n".join(["", *table(rows, psnr)]))
    failed = psnr < HALF_PSNR_BAR_DB or any("error" in row for row in rows.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
