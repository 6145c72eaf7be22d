"""The `gpen` command's process policy: set by the command, measurable, and with a way off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpen_cli.cli.process import POLICY_ENV, memory_policy_wanted

# Allocates a 96 MB block, touches every page, frees it; prints how much of it the process
# still holds (MB of resident memory kept). glibc's default hands such a block back to the
# kernel at once (its own mapping), so the next one costs fresh zeroed pages.
CHURN = """
import sys
import numpy as np
if sys.argv[1] == "policy":
    from gpen_cli.cli.process import apply_memory_policy
    assert apply_memory_policy()
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
before = resident()
block = np.empty(96 * 2**20, np.uint8)
block[::4096] = 1
del block
print(round(resident() - before))
"""


def kept_mb(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* of the test's own environment
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_memory_policy_keeps_large_blocks_instead_of_mapping_them_anew():
    assert kept_mb("default") < 8  # handed back: the next block is zeroed pages again
    assert kept_mb("policy") > 88  # kept for the next block


def test_the_policy_has_a_way_off_and_yields_to_the_users_own_settings():
    assert memory_policy_wanted({})
    for off in ("off", "0", "no", "OFF"):
        assert not memory_policy_wanted({POLICY_ENV: off})
    assert not memory_policy_wanted({"MALLOC_ARENA_MAX": "4"})
