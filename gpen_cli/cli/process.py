"""Process-wide policy the `gpen` command sets for itself at start (never the library).

The memory policy. ParseNet's activations are tens of MB each (32 channels of 512×512 floats
a face). glibc serves blocks that large with a fresh mmap and returns them to the kernel on
free, so every layer of every face would take new pages from the kernel, which zeroes them:
CPU time spent on nothing the restore needs. The command asks glibc instead to keep such
blocks in one heap and reuse them:

    M_ARENA_MAX 1              every thread allocates from the main heap (a thread's own arena
                               holds at most 64 MB and would map large blocks anyway)
    M_MMAP_MAX 0               no block gets a mapping of its own
    M_TRIM_THRESHOLD 512 MiB   free memory at the heap's top beyond this goes back to the
                               kernel, so the peak stays near the working set

The pixels are the same bytes either way. `GPEN_MALLOC_POLICY=off` leaves glibc's defaults,
and so does a user's own `MALLOC_*` environment variable (theirs wins). Elsewhere than glibc
(macOS, Windows, musl) nothing is changed. docs/benchmarks.md has the measurement.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

POLICY_ENV = "GPEN_MALLOC_POLICY"
# mallopt's parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
MEMORY_POLICY = {
    _M_ARENA_MAX: 1,
    _M_MMAP_MAX: 0,
    _M_TRIM_THRESHOLD: 512 * 1024 * 1024,
}


def memory_policy_wanted(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """False when the user turned the policy off or tunes glibc's allocator themselves."""
    if environ.get(POLICY_ENV, "").strip().lower() in ("off", "0", "no", "false"):
        return False
    return not any(name.startswith("MALLOC_") for name in environ)


def apply_memory_policy() -> bool:
    """Set MEMORY_POLICY through glibc's mallopt; whether it was set."""
    if not memory_policy_wanted():
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it: not musl's or macOS's libc)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = all(mallopt(parameter, value) == 1 for parameter, value in MEMORY_POLICY.items())
    logger.debug("glibc memory policy %s", "set" if applied else "refused")
    return applied
