"""How much of the machine's memory a run may plan on, and the caps that follow from it.

Worker counts and batch sizes are numbers a user types; each costs memory in proportion, so
a large one would grow the process until the system kills it (or swaps) before anything is
printed. They are capped to what half of the memory available when the run starts holds,
by a conservative estimate of what one worker or one face takes.
"""

from __future__ import annotations

import os

from gpen_cli.core.defaults import DEFAULT_MAX_PIXELS

# A worker holds at most two photos decoded or waiting (`gpen_cli.batch.runner`), each at
# most the input limit in 8-bit BGR, and a working copy of each.
WORKER_BYTES = 2 * 2 * 3 * DEFAULT_MAX_PIXELS
# A face in a batch: its crops, and the generator's activations for it in FP32, taken as
# 64 channels of 4 maps at the face's size (GPEN's widest maps run at the smaller sizes).
FACE_BYTES_PER_PIXEL = 3 * 4 + 4 * 64 * 4


def available_bytes() -> int:
    """Memory the system can give now without swapping (MemAvailable), else its free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 8 << 30  # unknown: plan on a modest machine


def _gb(value: int) -> str:
    return f"{value / (1 << 30):.1f} GB"


def cap_workers(workers: int) -> tuple[int, str | None]:
    """`workers` capped by memory, and the line saying so when it was (None otherwise)."""
    budget = available_bytes() // 2
    most = max(1, budget // WORKER_BYTES)
    if workers <= most:
        return workers, None
    return most, (
        f"{workers} workers capped to {most}: each may hold photos up to "
        f"{_gb(WORKER_BYTES)}, and half the available memory is {_gb(budget)}"
    )


def cap_batch_size(batch_size: int, size: int) -> tuple[int, str | None]:
    """`batch_size` faces of `size` px capped by memory, and the line saying so when it was."""
    per_face = size * size * FACE_BYTES_PER_PIXEL
    budget = available_bytes() // 2
    most = max(1, budget // per_face)
    if batch_size <= most:
        return batch_size, None
    return most, (
        f"batch size {batch_size} capped to {most}: a {size} px face takes about "
        f"{per_face / (1 << 20):.0f} MB, and half the available memory is {_gb(budget)}"
    )
