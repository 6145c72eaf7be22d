"""scripts/gpu_check.py's own steps, run on the CPU as far as they go."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_half_precision_comparison_runs_and_meets_its_bar_on_a_cpu():
    check = load_script()
    psnr = check.half_psnr("cpu", 64, 2)
    assert psnr >= check.HALF_PSNR_BAR_DB  # inf where the CPU has no BF16 (FP32 both times)


def test_table_gives_every_configuration_a_row_and_says_a_failure():
    check = load_script()
    row = {"s_per_face": 0.5, "faces_per_s": 2.0, "forward_s_per_face": 0.1, "dtype": "float16",
           "batch_size": 4, "compiled": True}  # fmt: skip
    lines = check.table({"fp32": row, "compile": {"error": "no triton"}}, 39.0)
    assert lines[1].split()[:3] == ["fp32", "0.500", "2.00"] and "compiled" in lines[1]
    assert "no triton" in lines[2]
    assert lines[-1].endswith("(BELOW 40 dB)")
    assert check.table({}, math.inf)[-1].endswith("(ok)")
