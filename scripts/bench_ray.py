"""`gpen batch`: the Ray engine against the thread engine, and with 1 and 2 model actors.

    python scripts/bench_ray.py [--photos 16] [--size 256]

Runs on a folder of copies of the shared portrait (one face each) with a random GPEN of
`--size`, RetinaFace MobileNet from ../shared, `--mask rect`, batch 4, FP32 on the CPU.
One local Ray (all CPUs) serves every Ray run; its start is timed apart, as a cluster is
started once for many jobs. Each Ray figure includes what a job pays once: starting the task
worker processes, each loading the detector and GPEN once, and the actors loading the models.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from gpen_cli.batch import BatchOptions, plan_layout, restore_folder
from gpen_cli.batch.ray_engine import RayOptions, ray_session, restore_folder_ray
from gpen_cli.config import MaskKind, RestoreConfig
from gpen_cli.models import build_gpen
from gpen_cli.restorer import FaceRestorer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gpen-bench-ray-"))
    torch.manual_seed(0)
    checkpoint = work / f"GPEN-random-{args.size}.pth"
    torch.save(build_gpen(args.size, 1, 0.5).state_dict(), checkpoint)
    source = work / "in"
    source.mkdir()
    for index in range(args.photos):
        shutil.copy(SHARED / "assets/images/portrait_small.jpg", source / f"p{index:03d}.jpg")
    settings = RestoreConfig(
        model=str(checkpoint),
        detector="retinaface-mobile",
        weights_dir=SHARED / "assets/weights",
        device="cpu",
        batch_size=4,
        mask=MaskKind.RECT,
    )
    print(f"{os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads, load {os.getloadavg()}")

    def report(name: str, outcome) -> None:
        print(f"{name}: {outcome.faces} faces in {outcome.seconds:.1f} s, "
              f"{outcome.faces_per_second:.2f} faces/s")  # fmt: skip

    layout = plan_layout(source, work / "threads")
    report("thread engine", restore_folder(FaceRestorer(config=settings), layout, BatchOptions()))
    started = time.perf_counter()
    with ray_session(RayOptions()):
        print(f"local Ray started in {time.perf_counter() - started:.1f} s")
        for actors in (1, 2):
            options = RayOptions(model_actors=actors, torch_threads=torch.get_num_threads())
            layout = plan_layout(source, work / f"ray{actors}")
            outcome = restore_folder_ray(settings, layout, BatchOptions(), options)
            report(f"ray, {actors} model actor(s)", outcome)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
