"""`gpen bench`: the configurations it runs, the figures it reports, and its JSON."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_as
from typer.testing import CliRunner

from gpen_cli.bench.figures import device_peak_tflops, gflop_per_face, parsing_gflop_per_face
from gpen_cli.bench.networks import resolve_bench_model
from gpen_cli.bench.workload import plan_configs
from gpen_cli.cli import app
from gpen_cli.cli.bench import parse_batch_sizes
from gpen_cli.core.config import MaskKind, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.pipeline.resolve import gpen_model_for_size
from gpen_cli.weights.registry import MODELS

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, ["bench", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_forward_only_json_reports_every_configuration(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    report = run_json(
        "--model", str(tiny_checkpoint), "-b", "1", "2", "--repeats", "1", "--faces", "3",
        "--mask", "rect",
    )  # fmt: skip
    assert report["mode"] == "forward only"
    assert any("forward only" in note and "random crops" in note for note in report["notes"])
    assert report["model"]["config"]["size"] == 64
    assert report["gflop_per_face"] == pytest.approx(gflop_per_face(report["model"]["config"]))
    for key in ("device", "cpu", "torch", "python", "numpy", "opencv", "gpen_cli"):
        assert report["system"][key]
    labels = [r["label"] for r in report["results"]]
    assert labels == ["exact fp32 b1 eager", "fast fp32 b1 eager", "fast fp32 b2 eager"]
    baseline = report["results"][0]
    assert baseline["speedup"] == pytest.approx(1.0)
    for result in report["results"]:
        assert result["faces"] == 3
        assert set(result["stages_s"]) == {"forward", "mask"}
        assert result["faces_per_s"] > 0 and result["s_per_face"] > 0
        assert result["faces_per_s"] == pytest.approx(1 / result["s_per_face"])
        assert result["speedup"] == pytest.approx(
            result["forward_faces_per_s"] / baseline["forward_faces_per_s"]
        )
        assert result["peak_rss_mb"] > 50
        assert result["cuda_peak_mb"] is None and result["peak_fraction"] is None


def test_photos_without_a_face_are_timed_and_said_with_no_speed_up(
    tiny_checkpoint, tmp_path, pipeline_weights_dir
):
    """No face in the photos: the stages still run and the report says so, with no ratio to a
    baseline that restored nothing (it divided by zero)."""
    gradient = np.linspace(0, 255, 96 * 128, dtype=np.float32).reshape(96, 128)
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "sky.png"), gradient.astype(np.uint8))
    report = run_json(
        "--model", str(tiny_checkpoint), "-b", "1", "--repeats", "1", "--mask", "rect",
        "--images", str(tmp_path / "photos"), "--detector", "retinaface-mobile",
        "--weights-dir", str(pipeline_weights_dir),
    )  # fmt: skip
    assert "no face was found in the photos: nothing reached the generator" in report["notes"]
    assert all(r["faces"] == 0 and r["speedup"] is None for r in report["results"])


@pytest.mark.slow
def test_pipeline_on_a_real_photo_times_the_restorers_own_stages(
    tiny_checkpoint, tmp_path, light_pipeline_weights_dir
):
    # The real detector where its weights are at hand, else the official faces replayed: the
    # stages are timed either way.
    photo_as("portrait", tmp_path / "photos" / "portrait.png")
    report = run_json(
        "--model", str(tiny_checkpoint), "-b", "2", "--half", "--repeats", "1",
        "--images", str(tmp_path / "photos"), "--detector", "retinaface-mobile",
        "--weights-dir", str(light_pipeline_weights_dir),
    )  # fmt: skip
    assert report["mode"] == "pipeline"
    first, fast = report["results"]
    assert first["label"] == "exact fp32 b1 eager" and fast["batch_size"] == 2
    assert first["faces"] == 1
    stages = first["stages_s"]
    assert list(stages) == [
        "decode", "detect", "align", "forward", "mask", "blend", "paste", "encode"
    ]  # fmt: skip
    assert first["total_s"] == pytest.approx(sum(stages.values()))
    assert first["mask_s_per_face"] == pytest.approx(stages["mask"])
    assert first["mask_tflops"] == pytest.approx(
        report["mask_gflop_per_face"] / stages["mask"] / 1e3
    )
    assert fast["dtype"] in ("bfloat16", "float32")  # BF16 only where the CPU runs it natively
    assert not any("random" in note and "ParseNet" in note for note in report["notes"])


def test_parsing_mask_cost_is_counted():
    # ParseNet's segmentation path at 512 px: the figure the official mask costs a face.
    assert parsing_gflop_per_face() == pytest.approx(469, rel=0.02)


def test_default_photos_come_from_the_shared_folder(monkeypatch, tmp_path):
    from gpen_cli.bench.workload import DEFAULT_PHOTOS, default_photos

    shared = tmp_path / "shared"
    for name in ("portrait_small.jpg", "solvay_conference_1927.png"):
        photo_as("portrait", shared / "assets" / "images" / name)
    monkeypatch.setenv("GPEN_SHARED_DIR", str(shared))
    names = [p.name for p in default_photos()]
    assert names == [
        n for n in DEFAULT_PHOTOS if n in ("portrait_small.jpg", "solvay_conference_1927.png")
    ]
    assert "portrait_small.jpg" in names and "solvay_conference_1927.png" in names
    monkeypatch.delenv("GPEN_SHARED_DIR")
    assert default_photos() == []


@pytest.mark.slow
def test_markdown_table(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    result = runner.invoke(
        app,
        [
            "bench",
            "--model",
            str(tiny_checkpoint),
            "--repeats",
            "1",
            "--faces",
            "1",
            "-b",
            "1,2",
            "--markdown",
            "--mask",
            "rect",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| configuration | faces/s |")
    assert lines[2].startswith("| exact fp32 b1 eager |")
    assert any(line.startswith("- device: cpu") for line in lines)


def test_plan_always_starts_with_the_faithful_baseline():
    base = RestoreConfig(mask="rect", half=True)
    baseline = base.but(batch_size=1, half=False, exact=True)
    configs = plan_configs(base, [1, 4, 4])
    assert configs == [baseline, base.but(batch_size=1), base.but(batch_size=4)]
    # the user's options reach every configuration, the baseline's generator aside
    assert all(config.mask is MaskKind.RECT for config in configs)
    # asking for the baseline itself does not measure it twice
    assert plan_configs(base.but(half=False, exact=True), [1]) == [baseline]


def test_batch_sizes_are_parsed_in_every_spelling():
    assert parse_batch_sizes(["1 4 8"]) == [1, 4, 8]
    assert parse_batch_sizes(["1,4", "8"]) == [1, 4, 8]
    with pytest.raises(GpenError, match="'0' is not a positive"):
        parse_batch_sizes(["0"])
    result = runner.invoke(app, ["bench", "-b", "x"])
    assert result.exit_code == 2 and "'x' is not a positive whole number" in result.output


def test_flop_count_matches_the_published_figures():
    assert gflop_per_face(MODELS["GPEN-BFR-512"].config) == pytest.approx(276.2, abs=0.1)
    assert gflop_per_face(MODELS["GPEN-BFR-256"].config) == pytest.approx(17.4, abs=0.05)


def test_peak_flops_known_only_for_listed_gpus_in_half_precision():
    assert device_peak_tflops("NVIDIA H100 80GB HBM3", torch.float16) == pytest.approx(989.4)
    assert device_peak_tflops("NVIDIA H100 PCIe", torch.bfloat16) == pytest.approx(756.0)
    assert device_peak_tflops("NVIDIA H200", torch.bfloat16) == pytest.approx(989.4)
    assert device_peak_tflops("NVIDIA H100 80GB HBM3", torch.float32) is None
    assert device_peak_tflops("NVIDIA GeForce RTX 4090", torch.float16) is None


def test_absent_registry_weights_become_seeded_random_weights():
    first, info = resolve_bench_model(RestoreConfig(model=gpen_model_for_size(256)), seed=3)
    second, _ = resolve_bench_model(RestoreConfig(model="GPEN-BFR-256"), seed=3)
    assert first.size == 256 and info["config"]["narrow"] == 0.5
    assert info["weights"].startswith("random (seed 3)")
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    with pytest.raises(GpenError, match="size 300: no registry GPEN model of that size"):
        gpen_model_for_size(300)
    with pytest.raises(GpenError, match="^model: 'yunet' is a face detector, not a GPEN model"):
        resolve_bench_model(RestoreConfig(model="yunet"), seed=0)


@pytest.mark.slow
def test_batch_sizes_are_capped_by_memory_in_one_line(tiny_checkpoint, monkeypatch):
    from gpen_cli.core import memory

    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    # Half of 64 MB holds 7 faces of 64 px by the estimate, not 100000.
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 << 20)
    report = run_json(
        "--model", str(tiny_checkpoint), "-b", "100000", "--repeats", "1", "--mask", "rect",
    )  # fmt: skip
    assert any("batch size 100000 capped to 7:" in note for note in report["notes"])
    labels = [r["label"] for r in report["results"]]
    assert labels == ["exact fp32 b1 eager", "fast fp32 b7 eager"]
    assert all(result["faces"] == 7 for result in report["results"])


def test_each_configuration_tells_its_steps_and_an_unfillable_batch_is_warned(
    tiny_checkpoint, monkeypatch
):
    from gpen_cli.bench.run import run_bench

    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    steps: list[str] = []
    report = run_bench(
        RestoreConfig(mask="rect", device="cpu"),
        model=str(tiny_checkpoint),
        batch_sizes=[4],
        repeats=1,
        faces=1,
        on_step=steps.append,
    )
    assert steps == [
        "configuration 1 of 2: setting up",
        "configuration 1 of 2: exact fp32 b1 eager: warming up",
        "configuration 1 of 2: exact fp32 b1 eager: run 1 of 1",
        "configuration 2 of 2: setting up",
        "configuration 2 of 2: fast fp32 b4 eager: warming up",
        "configuration 2 of 2: fast fp32 b4 eager: run 1 of 1",
    ]
    # One face a run: the b4 row times batches of one, and says so; the b1 row is fine.
    warnings = [note for note in report.notes if "never fills" in note]
    assert warnings == [
        "batch size 4 never fills: the workload holds 1 face a run, so its row times "
        "batches of 1 (more crops fill it)"
    ]


@pytest.mark.slow
def test_the_cli_shows_the_unfillable_batch_warning(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    args = ["--model", str(tiny_checkpoint), "-b", "2", "--repeats", "1", "--faces", "1"]
    result = runner.invoke(app, ["bench", *args, "--mask", "rect"])
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    assert "batch size 2 never fills: the workload holds 1 face a run" in words


@pytest.mark.slow
def test_the_table_and_its_lines_fit_80_columns_between_words(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("GPEN_SHARED_DIR", raising=False)
    args = ["bench", "--model", str(tiny_checkpoint), "--repeats", "1", "--faces", "1"]
    result = runner.invoke(app, [*args, "-b", "1", "--mask", "rect"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for line in lines:  # wider only where one word (a path) is wider
        assert len(line) <= 80 or len(line.split()) == 1, line
    said = " ".join(result.stdout.split())
    assert "workload: forward only, 1 face, median of 1 run after a warm-up" in said
    assert str(tiny_checkpoint) in said  # the path whole


def test_bench_quiet_keeps_the_results_and_says_so():
    """Every other command's -q prints errors only; bench's results are what it is for."""
    result = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert "No spinner or warnings: the results and errors." in result.output
    assert "Print errors only." not in result.output
