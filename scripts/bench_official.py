"""The official GPEN pipeline and `gpen batch` side by side, as whole processes.

    python scripts/bench_official.py --official /path/to/GPEN [--rounds 3] [--photos A B ...]

Each round runs, in an order that rotates from round to round, the official
`FaceEnhancement.process` (through ../shared/tools/official_pipeline.py, RetinaFace
MobileNet substituted for R50, CPU or CUDA as torch finds), `gpen batch` with its defaults
(the official output) and `gpen batch --half`, on the same photos with the same weights: the
fixture GPEN-BFR-256 and ParseNet of ../shared/fixtures/official_pipeline/ unless --model and
--parsenet name others. Every figure is a whole process from its start to its exit (imports
and model loading included), as a user meets it.

It prints, per configuration, the median seconds a face and its ratio to the official one,
each process's own peak RSS (from wait4), and the PSNR of every output photo against the
official output of the same photo, with the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = [
    "portrait_small.jpg",
    "group_small.jpg",
    "ffhq_00000_lq.png",
    "solvay_conference_1927.png",
]


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    faces: int
    outputs: dict[str, Path]  # photo stem -> restored photo


@dataclass
class Series:
    name: str
    runs: list[Run] = field(default_factory=list)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one whole process; exits on its failure."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0,):
        sys.exit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024


def run_official(args, photos: list[Path], out: Path) -> Run:
    tool = args.shared / "tools" / "official_pipeline.py"
    env = {**os.environ, "REF_GPEN_DIR": str(args.official), "PARSENET": str(args.parsenet)}
    env["PYTHONWARNINGS"] = "ignore"  # the official code's SyntaxWarnings are not news
    command = [sys.executable, str(tool), str(args.model), str(args.detector), str(out)]
    seconds, peak = timed([*command, *map(str, photos)], env)
    timing = json.loads((out / "timing.json").read_text())
    faces = sum(image["faces"] for image in timing["images"].values())
    outputs = {photo.stem: out / f"{photo.stem}_GPEN.png" for photo in photos}
    return Run(seconds, peak, faces, outputs)


def run_gpen(args, folder: Path, out: Path, extra: list[str]) -> Run:
    report = out.parent / f"{out.name}.json"
    command = [
        *args.gpen, "batch", str(folder), "-o", str(out), "-q", "--report", str(report),
        "--model", str(args.model), "--detector", "retinaface-mobile",
        "--weights-dir", str(args.weights_dir), "--ext", "png", *extra,
    ]  # fmt: skip
    seconds, peak = timed(command, dict(os.environ))
    results = json.loads(report.read_text())["results"]
    faces = sum(entry["faces"]["count"] for entry in results)
    outputs = {Path(entry["input"]).stem: Path(entry["output"]) for entry in results}
    return Run(seconds, peak, faces, outputs)


def psnr(ours: Path, official: Path) -> float:
    a = cv2.imread(str(ours)).astype(np.float64)
    b = cv2.imread(str(official)).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def weights_folder(args, root: Path) -> Path:
    """What gpen needs besides the generator, named as its registry names them."""
    folder = root / "weights"
    folder.mkdir()
    (folder / "detection_mobilenet0.25_Final.pth").symlink_to(args.detector)
    (folder / "parsing_parsenet.pth").symlink_to(args.parsenet)
    return folder


def one_round(args, index: int, photos: list[Path], folder: Path, series: list[Series]) -> None:
    """Every configuration once, in an order rotated by `index`."""
    order = series[index % len(series) :] + series[: index % len(series)]
    for entry in order:
        out = args.work / f"round{index}-{entry.name.replace(' ', '_')}"
        if entry.name == "official":
            run = run_official(args, photos, out)
        else:
            run = run_gpen(args, folder, out, ["--half"] if "half" in entry.name else [])
        entry.runs.append(run)
        print(f"round {index + 1}: {entry.name:<12} {run.seconds:7.1f} s  {run.faces} faces")


def summary(series: list[Series]) -> None:
    official = series[0]
    base = statistics.median(run.seconds / run.faces for run in official.runs)
    print(
        f"\n{'configuration':<14}{'s/face':>8}{'x official':>12}{'peak RSS MB':>13}"
        "  PSNR vs official"
    )
    for entry in series:
        per_face = statistics.median(run.seconds / run.faces for run in entry.runs)
        peak = max(run.peak_rss_mb for run in entry.runs)
        last = entry.runs[-1]
        scores = [
            f"{stem} {psnr(path, official.runs[-1].outputs[stem]):.1f}"
            for stem, path in sorted(last.outputs.items())
        ]
        print(
            f"{entry.name:<14}{per_face:8.2f}{base / per_face:12.2f}{peak:13.0f}  "
            + ("-" if entry is official else ", ".join(scores))
        )


def parse() -> argparse.Namespace:
    shared = Path(os.environ.get("GPEN_SHARED_DIR", REPO.parent / "shared"))
    fixtures = shared / "fixtures" / "official_pipeline"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="a yangxy/GPEN checkout")
    parser.add_argument("--shared", type=Path, default=shared)
    parser.add_argument("--photos", nargs="+", default=DEFAULT_PHOTOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=fixtures / "GPEN-BFR-256.pth")
    parser.add_argument("--parsenet", type=Path, default=fixtures / "parsing_parsenet.pth")
    parser.add_argument(
        "--detector",
        type=Path,
        default=shared / "assets" / "weights" / "detection_mobilenet0.25_Final.pth",
    )
    parser.add_argument("--no-half", action="store_true", help="leave out gpen --half")
    parser.add_argument(
        "--gpen", nargs="+", default=[sys.executable, "-m", "gpen_cli"], help="the command"
    )
    return parser.parse_args()


def main() -> None:
    args = parse()
    photos = [args.shared / "assets" / "images" / name for name in args.photos]
    args.work = Path(tempfile.mkdtemp(prefix="bench-official-"))
    try:
        folder = args.work / "photos"
        folder.mkdir()
        for photo in photos:
            shutil.copy(photo, folder / photo.name)
        args.weights_dir = weights_folder(args, args.work)
        series = [Series("official"), Series("gpen fp32")]
        if not args.no_half:
            series.append(Series("gpen --half"))
        print(f"load average at start: {os.getloadavg()[0]:.2f}; {len(photos)} photos")
        for index in range(args.rounds):
            one_round(args, index, photos, folder, series)
        summary(series)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
