"""`gpen batch`: the Ray engine against the thread engine on real photos, 1 and 2 model actors.

    python scripts/bench_ray.py [--copies 3] [--rounds 2] [--glob '*.jpg'] [--cluster]

Input: `--copies` copies of every photo in ../shared/assets/images (portraits, a group, the
1927 Solvay photo with 29 faces). Models: the official-pipeline fixture GPEN-BFR-256 (random
weights, the published file format), RetinaFace MobileNet and the fixture ParseNet, FP32 on
the CPU, `--batch-size 1` so that the engines' outputs can be compared byte for byte.

Every run is the `gpen batch` command in a process of its own, as a user runs it: `wall` is
the whole command (Python start, model loading, the job), `job` is the report's `seconds`.
Without `--cluster` each Ray run starts its own local Ray (`gpen batch --engine ray`); with
it, the Ray runs go to one local cluster started once by `ray start --head` (in a private
temp dir and port, so no other Ray on the machine sees it) and its start is timed apart.
The runs of a round are interleaved, and their order rotates between rounds, because a
shared machine's load drifts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("GPEN_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GPEN = Path(sys.executable).with_name("gpen")
RAY = Path(sys.executable).with_name("ray")


def make_inputs(work: Path, copies: int, pattern: str) -> tuple[Path, Path]:
    """The photo folder and a weights folder linking the shared detector and ParseNet."""
    source, weights = work / "in", work / "weights"
    source.mkdir()
    weights.mkdir()
    photos = sorted((SHARED / "assets/images").glob(pattern))
    for copy in range(copies):
        for photo in photos:
            shutil.copy(photo, source / f"{photo.stem}-{copy}{photo.suffix}")
    for linked in (
        SHARED / "assets/weights/detection_mobilenet0.25_Final.pth",
        SHARED / "fixtures/official_pipeline/parsing_parsenet.pth",
    ):
        (weights / linked.name).symlink_to(linked)
    return source, weights


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_cluster(work: Path, cpus: int) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` in a private temp dir; ends with the process it returns.

    Workers at normal priority (RAY_worker_niceness=0), as `gpen batch` gives a local Ray:
    on a shared machine Ray's default nice 15 would lose the cores to other jobs.
    """
    port = free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={work / 'ray'}"],
        env={**os.environ, "RAY_worker_niceness": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return head, f"127.0.0.1:{port}"


def wait_for_cluster(address: str, timeout: float = 120) -> None:
    """Until a driver can connect: `ray start --block` does not say when the head is up."""
    probe = f"import ray; ray.init(address='{address}', log_to_driver=False); ray.shutdown()"
    deadline = time.monotonic() + timeout
    while subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"no Ray cluster answered at {address} within {timeout:.0f} s")
        time.sleep(1)


def run_gpen(source: Path, weights: Path, out: Path, extra: list[str]) -> dict:
    """One `gpen batch` command; its wall time and what its report says."""
    report = out.with_suffix(".json")
    command = [
        str(GPEN), "batch", str(source), "-o", str(out), "--report", str(report), "-q",
        "--model", str(SHARED / "fixtures/official_pipeline/GPEN-BFR-256.pth"),
        "--weights-dir", str(weights), "--detector", "retinaface-mobile", "--device", "cpu",
        "--batch-size", "1", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    data = json.loads(report.read_text())
    return {"wall": wall, "job": data["seconds"], "faces": data["faces_restored"]}


def same_bytes(one: Path, other: Path) -> bool:
    """The same files, byte for byte (reports live beside the folders, not in them)."""
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    return files == theirs and all(
        (one / f).read_bytes() == (other / f).read_bytes() for f in files
    )


def run_round(
    round_: int, engines: dict[str, list[str]], work: Path, source: Path, weights: Path
) -> dict[str, dict]:
    """Every engine once, the order rotated by the round; Ray outputs compared to the threads'."""
    names = list(engines)[round_ % len(engines) :] + list(engines)[: round_ % len(engines)]
    outs = {name: work / f"out{round_}-{index}" for index, name in enumerate(engines)}
    results = {}
    for name in names:
        results[name] = run_gpen(source, weights, outs[name], engines[name])
        print(f"round {round_ + 1}, {name}: {results[name]}", flush=True)
    for name in engines:
        if name != "thread":
            results[name]["same bytes"] = same_bytes(outs[name], outs["thread"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--glob", default="*.[pj][np]g", help="which shared photos to copy")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--cluster", action="store_true", help="Ray runs on one `ray start`")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gpen-bench-ray-"))
    source, weights = make_inputs(work, args.copies, args.glob)
    head, where = None, ["--workers", str(args.cpus)]
    if args.cluster:
        # Ray 2.60's `ray start` turns token authentication on (the token in ~/.ray); a driver
        # presents it only when told to, as `gpen batch --address` must be.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        started = time.perf_counter()
        head, address = start_cluster(work, args.cpus)
        where = ["--address", address]
    engines = {
        "thread": ["--engine", "thread"],
        "ray, 1 model actor": ["--engine", "ray", "--model-actors", "1", *where],
        "ray, 2 model actors": ["--engine", "ray", "--model-actors", "2", *where],
    }
    print(f"{len(list(source.iterdir()))} photos, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    rounds = []
    try:
        if head is not None:
            wait_for_cluster(where[1])
            print(
                f"ray start --head: a driver connected after {time.perf_counter() - started:.1f} s"
            )
        for round_ in range(args.rounds):
            rounds.append(run_round(round_, engines, work, source, weights))
    finally:
        if head is not None:
            head.terminate()
            head.wait(60)
    summarize({name: [results[name] for results in rounds] for name in engines})
    shutil.rmtree(work, ignore_errors=True)


def summarize(results: dict[str, list[dict]]) -> None:
    """Medians per engine, and each Ray engine's job time against the thread engine's."""
    thread_job = statistics.median(r["job"] for r in results["thread"])
    thread_wall = statistics.median(r["wall"] for r in results["thread"])
    print("\n| engine | faces | job s | faces/s | wall s | job vs thread | wall vs thread |")
    for name, runs in results.items():
        job = statistics.median(r["job"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        faces = runs[0]["faces"]
        print(f"| {name} | {faces} | {job:.1f} | {faces / job:.2f} | {wall:.1f} | "
              f"{job / thread_job:.2f}x | {wall / thread_wall:.2f}x |")  # fmt: skip
    for name, runs in results.items():
        if name != "thread":
            print(f"{name}: the thread engine's bytes in {[r['same bytes'] for r in runs]}")


if __name__ == "__main__":
    main()
