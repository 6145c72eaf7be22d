"""`gpen doctor`: each check's verdicts, the runner that never crashes, and the command's output."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, load_replay_detector, real_detectors_dir
from typer.testing import CliRunner

import gpen_cli.doctor as doctor
from gpen_cli.cli import app
from gpen_cli.doctor import (
    CHECKS,
    FAIL,
    PASS,
    WARN,
    Check,
    CheckResult,
    DoctorContext,
    check_numpy_version,
    numerics,
    packages,
    run_check,
    selftest,
    storage,
    torch_env,
)
from gpen_cli.doctor.result import NUMPY_FIX
from gpen_cli.weights import download, registry, store

runner = CliRunner()

MOBILE = registry.MODELS["retinaface-mobile"]


@pytest.fixture
def context(tmp_path: Path) -> DoctorContext:
    return DoctorContext(tmp_path / "weights")


# ------------------------------------------------------------------ numpy version (pure)


@pytest.mark.parametrize("version", ["2.1.0", "2.0.0rc1", "2.0.0", "3.0.0.dev0", "1.23.5"])
def test_numpy_outside_the_requirement_fails_with_the_pin(version):
    result = check_numpy_version(version)
    assert result.status == FAIL
    assert result.fix == "pip install 'numpy>=1.24,<2.0'"
    assert version in result.detail


@pytest.mark.parametrize("version", ["1.26.4", "1.24.0", "1.25.2"])
def test_numpy_inside_the_requirement_passes(version):
    result = check_numpy_version(version)
    assert (result.status, result.fix) == (PASS, "")


@pytest.mark.parametrize(("version", "status"), [("2.1.0", FAIL), ("1.26.0", PASS)])
def test_numpy_check_reads_the_imported_numpy(monkeypatch, context, version, status):
    import numpy

    monkeypatch.setattr(numpy, "__version__", version)
    assert packages.numpy_version(context).status == status


# ------------------------------------------------------------------ numeric health


@pytest.mark.parametrize(
    "check",
    [
        packages.opencv_numpy,
        packages.torch_numpy,
        numerics.alignment_dtypes,
        numerics.warp_round_trip,
        numerics.grid_sample_identity,
        torch_env.torch_version,
        torch_env.half_precision,
    ],
)
def test_numeric_and_bridge_checks_pass_here(check, context):
    result = check(context)
    assert result.status == PASS, result


def test_alignment_check_fails_on_float32_matrices(monkeypatch, context):
    import numpy as np

    from gpen_cli.stages import align

    real = align.align_face

    def float32_alignment(landmarks, size):
        alignment = real(landmarks, size)
        return align.Alignment(
            alignment.forward.astype(np.float32), alignment.inverse.astype(np.float32), size
        )

    monkeypatch.setattr(align, "align_face", float32_alignment)
    result = numerics.alignment_dtypes(context)
    assert result.status == FAIL
    assert "forward is float32, not float64" in result.detail


def test_warp_check_fails_when_the_matrix_loses_precision(monkeypatch, context):
    import cv2
    import numpy as np

    real = cv2.warpAffine

    def half_precision_warp(image, matrix, size, **kwargs):
        return real(image, matrix.astype(np.float16).astype(np.float64) + 0.01, size, **kwargs)

    monkeypatch.setattr(cv2, "warpAffine", half_precision_warp)
    result = numerics.warp_round_trip(context)
    assert result.status == FAIL
    assert "NOT exact" in result.detail


def test_grid_sample_check_fails_on_a_one_ulp_error(monkeypatch, context):
    import torch
    import torch.nn.functional as F

    real = F.grid_sample

    def nudged(source, grid, **kwargs):
        return torch.nextafter(real(source, grid, **kwargs), torch.tensor(2.0))

    monkeypatch.setattr(F, "grid_sample", nudged)
    result = numerics.grid_sample_identity(context)
    assert result.status == FAIL
    assert "nearest on cpu differs" in result.detail


# ------------------------------------------------------------------ torch.compile


def test_compile_check_warns_when_over_budget(monkeypatch, context):
    monkeypatch.setattr(torch_env, "_COMPILE_PROBE", "import time; time.sleep(30)")
    monkeypatch.setattr(torch_env, "COMPILE_BUDGET_S", 0.5)
    result = torch_env.torch_compile(context)
    assert result.status == WARN
    assert "did not finish within 0.5 s" in result.detail


def test_compile_check_warns_with_the_reason(monkeypatch, context):
    probe = "raise RuntimeError('InvalidCxxCompiler: No working C++ compiler found')"
    monkeypatch.setattr(torch_env, "_COMPILE_PROBE", probe)
    result = torch_env.torch_compile(context)
    assert result.status == WARN
    assert "No working C++ compiler found" in result.detail
    assert "--compile" in result.fix


# ------------------------------------------------------------------ weights and folders


def test_checksums_catch_a_corrupt_registry_file(context):
    context.weights_dir.mkdir()
    (context.weights_dir / MOBILE.filename).write_bytes(b"not a checkpoint")
    result = storage.weights_checksums(context)
    assert result.status == FAIL
    assert "retinaface-mobile" in result.detail
    assert "gpen weights download retinaface-mobile --force" in result.fix


def test_checksums_use_the_recorded_sha256(context):
    context.weights_dir.mkdir()
    spec = registry.MODELS["retinaface-resnet50"]
    path = context.weights_dir / spec.filename
    path.write_bytes(b"detector bytes")
    store.checksum_path(path).write_text(f"{store.sha256_file(path)}  {path.name}\n")
    assert storage.weights_checksums(context).status == PASS

    path.write_bytes(b"detector bytes, damaged")
    result = storage.weights_checksums(context)
    assert result.status == FAIL
    assert "gpen weights download retinaface-resnet50 --force" in result.fix


def test_a_generator_file_that_is_no_generator_fails_even_with_a_recorded_hash(context):
    context.weights_dir.mkdir()
    path = context.weights_dir / "GPEN-BFR-512.pth"
    path.write_bytes(b"x" * 1000)  # what a failed download page might leave
    store.checksum_path(path).write_text(f"{store.sha256_file(path)}  {path.name}\n")
    result = storage.weights_checksums(context)
    assert result.status == FAIL
    assert "GPEN-BFR-512: not a readable PyTorch checkpoint" in result.detail
    assert "gpen weights download GPEN-BFR-512 --force" in result.fix


def test_checksums_pass_on_the_real_detectors():
    folder = real_detectors_dir()
    result = storage.weights_checksums(DoctorContext(folder))
    assert result.status == PASS
    assert "retinaface-mobile" in result.detail and "yunet" in result.detail


def test_weights_present_lists_files_and_asks_for_what_restore_needs(context):
    context.weights_dir.mkdir()
    (context.weights_dir / MOBILE.filename).write_bytes(b"x" * 1_500_000)
    result = storage.weights_present(context)
    assert result.status == WARN
    assert "retinaface-mobile 1.5 MB" in result.detail
    assert "`gpen restore` also needs GPEN-BFR-512, retinaface-resnet50, parsenet" in result.detail
    assert result.fix.startswith("gpen weights download GPEN-BFR-512 retinaface-resnet50 parsenet")
    assert "gpen weights add FILE" in result.fix

    for name in ("GPEN-BFR-512", "retinaface-resnet50"):
        (context.weights_dir / registry.MODELS[name].filename).write_bytes(b"x")
    assert storage.weights_present(context).status == WARN  # the default mask needs ParseNet
    (context.weights_dir / "parsing_parsenet.pth").write_bytes(b"x")
    assert storage.weights_present(context).status == PASS


def test_weights_present_is_not_fooled_by_another_generator(context):
    """GPEN-BFR-256 and the mobile detector are no default restore's weights."""
    context.weights_dir.mkdir()
    for name in ("GPEN-BFR-256", "retinaface-mobile", "parsenet"):
        (context.weights_dir / registry.MODELS[name].filename).write_bytes(b"x")
    result = storage.weights_present(context)
    assert result.status == WARN
    assert "also needs GPEN-BFR-512, retinaface-resnet50 " in result.detail


def test_weights_present_follows_the_config_file(context, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('model = "GPEN-BFR-256"\ndetector = "retinaface-mobile"\nmask = "rect"\n')
    monkeypatch.setenv("GPEN_CONFIG", str(config))
    context.weights_dir.mkdir()
    for name in ("GPEN-BFR-256", "retinaface-mobile"):
        (context.weights_dir / registry.MODELS[name].filename).write_bytes(b"x")
    result = storage.weights_present(context)
    assert result.status == PASS
    assert "`gpen restore` needs GPEN-BFR-256, retinaface-mobile: all here" in result.detail


def test_checksums_say_which_check_each_file_passed(context, seeded_weights_dir):
    """A GPEN file, with no published hash, is checked by structure and said so."""
    context.weights_dir.mkdir()
    (context.weights_dir / "GPEN-BFR-256.pth").symlink_to(seeded_weights_dir / "GPEN-BFR-256.pth")
    spec = registry.MODELS["retinaface-resnet50"]
    path = context.weights_dir / spec.filename
    path.write_bytes(b"detector bytes")
    store.checksum_path(path).write_text(f"{store.sha256_file(path)}  {path.name}\n")
    result = storage.weights_checksums(context)
    assert result.status == PASS
    assert "sha256 verified" not in result.detail
    assert "GPEN-BFR-256 (layout and values)" in result.detail
    assert "retinaface-resnet50 (recorded sha256)" in result.detail


def test_a_bad_config_file_fails_the_config_check_and_the_doctor_still_runs(tmp_path, monkeypatch):
    from gpen_cli.doctor import config_file

    config = tmp_path / "config.toml"
    config.write_text('detector = "retina"\n')
    monkeypatch.setenv("GPEN_CONFIG", str(config))
    monkeypatch.setattr(
        doctor, "CHECKS", (Check(config_file.CONFIG_FILE, config_file.config_file),)
    )
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    row = json.loads(result.stdout)["checks"][0]
    assert row["status"] == "fail"
    assert row["detail"].startswith(f"config file {config}: detector: unknown detector 'retina'")


def test_unwritable_weights_folder_warns(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = storage.weights_writable(DoctorContext(blocker / "weights"))
    assert result.status == WARN
    assert "--weights-dir" in result.fix


def test_missing_weights_folder_that_can_be_made_passes(context):
    result = storage.weights_writable(context)
    assert result.status == PASS
    assert "can be created" in result.detail
    assert not context.weights_dir.exists()


def test_low_disk_warns(monkeypatch, context):
    assert storage.free_disk(context).status == PASS
    monkeypatch.setattr(storage, "LOW_DISK_BYTES", 10**18)
    result = storage.free_disk(context)
    assert result.status == WARN
    assert "GB free" in result.detail


# ------------------------------------------------------------------ self-test


def test_self_test_without_a_detector_warns_with_the_command(monkeypatch, context):
    def offline(spec, dest_dir, **kwargs):
        raise download.DownloadError(spec.filename, spec.url, "cannot reach github.com")

    monkeypatch.setattr(download, "download", offline)
    result = selftest.self_test(context)
    assert result.status == WARN
    assert MOBILE.filename in result.detail and "cannot reach github.com" in result.detail
    assert result.fix.startswith("gpen weights download retinaface-mobile")


def test_self_test_without_scikit_image_warns(monkeypatch, context):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import now raises ModuleNotFoundError
    result = selftest.self_test(context)
    assert (result.status, result.fix) == (WARN, "pip install scikit-image")


def test_smallest_present_generator_is_picked(tmp_path):
    for name in ("GPEN-BFR-1024", "GPEN-BFR-512"):
        (tmp_path / registry.MODELS[name].filename).write_bytes(b"x")
    assert selftest.pick_generator(tmp_path) == "GPEN-BFR-512"
    assert selftest.pick_generator(tmp_path / "empty") is None


# ------------------------------------------------------------------ the runner never crashes


def test_a_raising_check_is_a_fail_with_its_text(context):
    def broken(_context):
        raise ValueError("matrix is singular")

    result = run_check(Check("broken", broken), context)
    assert result == CheckResult(
        "broken",
        FAIL,
        "the check raised ValueError: matrix is singular",
        "report a bug with the output of `gpen doctor --json`",
    )


def test_a_missing_package_says_what_to_install(context):
    def needs_cv2(_context):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    result = run_check(Check("opencv", needs_cv2), context)
    assert (result.status, result.fix) == (FAIL, "pip install opencv-python")


@pytest.mark.slow
def test_doctor_survives_broken_compiled_packages(tmp_path):
    """With numpy reporting 2.x and cv2/torch/numba failing to import as under numpy 2,
    `gpen doctor` still runs every check, and the numpy line says what to do."""
    fakes = tmp_path / "fakes"
    (fakes / "numpy").mkdir(parents=True)
    (fakes / "numpy" / "__init__.py").write_text("__version__ = '2.1.0'\n")
    for module in ("cv2", "torch", "numba"):
        (fakes / f"{module}.py").write_text(
            "raise ImportError('numpy.core.multiarray failed to import')\n"
        )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fakes), str(REPO)])}
    command = [sys.executable, "-m", "gpen_cli", "doctor", "--json"]
    done = subprocess.run(
        [*command, "--weights-dir", str(tmp_path / "weights")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    results = {row["name"]: row for row in json.loads(done.stdout)["checks"]}
    assert list(results) == [check.name for check in CHECKS]
    assert results["numpy version"]["status"] == "fail"
    assert results["numpy version"]["fix"] == NUMPY_FIX
    for name in ("opencv + numpy", "torch + numpy", "grid_sample identity", "torch.compile"):
        assert results[name]["status"] == "fail"
        assert "numpy.core.multiarray failed to import" in results[name]["detail"]
    assert results["opencv + numpy"]["fix"] == "pip install --force-reinstall opencv-python"
    assert results["weights checksums"]["status"] == "pass"


def test_doctor_modules_import_no_heavy_package():
    code = (
        "import sys, gpen_cli.doctor; "
        "print(sorted(m for m in ('numpy', 'torch', 'cv2', 'skimage') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ the command


def _fixed_checks(*statuses: str) -> tuple[Check, ...]:
    return tuple(
        Check(f"check {i}", lambda _c, i=i, s=s: CheckResult(f"check {i}", s, f"detail {i}", "fix"))
        for i, s in enumerate(statuses)
    )


def test_a_failing_check_exits_1(monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", _fixed_checks(PASS, FAIL, WARN))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "1 passed, 1 warning, 1 failed" in result.stdout


def test_warnings_alone_exit_0(monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", _fixed_checks(PASS, WARN))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0
    assert "1 passed, 1 warning, 0 failed" in result.stdout


def test_details_fit_80_columns_and_no_name_is_cut(monkeypatch):
    folder = "/a/rather/long/path/to/a/weights/folder/that/does/not/fit/in/the/line"
    detail = (
        f"{folder} (the user data folder): GPEN-BFR-256 4.4 MB, detection_mobilenet0.25_Final.pth"
    )
    fix = f"gpen weights download GPEN-BFR-512 retinaface-resnet50 parsenet --weights-dir {folder}"
    checks = (
        Check("weights present", lambda _c: CheckResult("weights present", WARN, detail, fix)),
        Check("numpy version", lambda _c: CheckResult("numpy version", PASS, "ok", "")),
    )
    monkeypatch.setattr(doctor, "CHECKS", checks)
    lines = runner.invoke(app, ["doctor"], env={"COLUMNS": "80"}).stdout.splitlines()
    first = lines.index("weights present:") + 1
    last = next(i for i in range(first, len(lines)) if not lines[i].endswith(" \\"))
    fix_text = " ".join(line.strip().removesuffix(" \\") for line in lines[first : last + 1])
    assert fix_text == fix  # broken between words only: the copied lines are the command
    too_long = [line for line in lines if len(line) > 80]
    assert too_long == [] or all(len(line.split()) <= 2 for line in too_long), too_long
    words = " ".join(line.strip() for line in lines[: lines.index("To fix:") - 1]).split()
    assert folder in words and "detection_mobilenet0.25_Final.pth" in words


def test_device_on_a_cpu_machine_with_a_cuda_build_of_torch(monkeypatch, context):
    """No GPU: say so, and that the CUDA libraries torch brought are unused, with the CPU
    build's install command (the same versions, no other package touched)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch_env, "nvidia_gpu_present", lambda: False)
    monkeypatch.setattr(torch_env, "cuda_libraries_bytes", lambda: 3_100_000_000)
    result = torch_env.device(context)
    assert result.status == WARN
    assert "no GPU found" in result.detail
    assert "CUDA 12.4 libraries installed with torch (3.1 GB) are unused here" in result.detail
    assert "install a CUDA build" not in result.fix
    assert result.fix.startswith("to save 3.1 GB: pip install --force-reinstall --no-deps torch==")
    assert "--index-url https://download.pytorch.org/whl/cpu" in result.fix

    monkeypatch.setattr(torch_env, "nvidia_gpu_present", lambda: True)
    result = torch_env.device(context)
    assert "an NVIDIA GPU is here but torch's CUDA 12.4 cannot use it" in result.detail
    assert result.fix == torch_env.DRIVER_FIX


def test_device_with_a_cpu_only_torch_points_to_a_cuda_build(monkeypatch, context):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    result = torch_env.device(context)
    assert "torch is a CPU-only build" in result.detail and result.fix == torch_env.CUDA_FIX


def test_json_output_is_the_list_and_nothing_else(monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", _fixed_checks(PASS, FAIL))
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["schema_version"] == 2 and document["ok"] is False
    assert document["checks"] == [
        {"key": "check_0", "name": "check 0", "status": "pass", "detail": "detail 0", "fix": "fix"},
        {"key": "check_1", "name": "check 1", "status": "fail", "detail": "detail 1", "fix": "fix"},
    ]


def test_json_stdout_carries_nothing_but_the_json():
    """Prints from Python, from C (file descriptor 1) and from child processes go to stderr."""
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        import gpen_cli.doctor as doctor
        from gpen_cli.cli import app

        def noisy(_context):
            print("python noise")
            os.write(1, b"fd noise\\n")
            subprocess.run([sys.executable, "-c", "print('child noise')"])
            return doctor.CheckResult("noisy", doctor.PASS, "ok")

        doctor.CHECKS = (doctor.Check("noisy", noisy),)
        app(["doctor", "--json"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    checks = json.loads(done.stdout)["checks"]
    assert checks == [
        {"key": "noisy", "name": "noisy", "status": "pass", "detail": "ok", "fix": ""}
    ]
    for noise in ("python noise", "fd noise", "child noise"):
        assert noise in done.stderr


@pytest.mark.slow
def test_doctor_passes_on_this_machine(monkeypatch, seeded_detector_dir):
    """Every check runs, none fails; the self-test restores the astronaut with
    retinaface-mobile and a random GPEN-256 (no generator weights are shared).

    Without the real detector weights: the seeded RetinaFace file, which the registry is told
    the sha256 of, and the official detector's faces replayed (the real files' checksums are
    test_checksums_pass_on_the_real_detectors')."""
    try:
        folder = real_detectors_dir()
    except pytest.skip.Exception:
        folder = seeded_detector_dir
        digest = store.sha256_file(folder / MOBILE.filename)
        monkeypatch.setitem(
            registry.MODELS, MOBILE.name, dataclasses.replace(MOBILE, sha256=digest)
        )
        monkeypatch.setattr("gpen_cli.pipeline.resolve.load_detector", load_replay_detector)
    monkeypatch.setattr(torch_env, "COMPILE_BUDGET_S", 5.0)  # a WARN at worst, never a FAIL
    result = runner.invoke(app, ["doctor", "--json", "--weights-dir", str(folder)])
    rows = json.loads(result.stdout)["checks"]
    assert [row["name"] for row in rows] == [check.name for check in CHECKS]
    assert all(set(row) == {"key", "name", "status", "detail", "fix"} for row in rows)
    assert all(re.fullmatch(r"[a-z0-9_]+", row["key"]) for row in rows)
    assert len({row["key"] for row in rows}) == len(rows)
    failed = [row for row in rows if row["status"] == "fail"]
    assert result.exit_code == 0, failed
    self_test = next(row for row in rows if row["name"] == "self-test")
    assert self_test["status"] == "pass"
    assert "restored 1 face of skimage's astronaut" in self_test["detail"]
    assert "random weights: checks the plumbing, not the restoration" in self_test["detail"]


def test_ray_extra_that_cannot_import_fails_with_the_pinned_install(monkeypatch, context):
    from gpen_cli.doctor import ray_extra

    pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setitem(sys.modules, "ray.data", None)  # as when pyarrow refuses numpy 1.x

    result = ray_extra.ray_extra(context)

    assert result.status == "FAIL" and "import ray.data" in result.detail
    assert "pyarrow<26" in result.fix


def test_a_long_fix_command_is_broken_between_words_and_pastes_as_the_same_command():
    """At 80 columns a fix command longer than the line is broken by backslashes between
    its shell words, quotes kept whole: the lines run by a shell are the one command."""
    import subprocess

    from gpen_cli.cli.doctor import fix_lines

    fix = (
        "pip install --force-reinstall --no-deps torch==2.14.1 torchvision==0.29.1 "
        "--index-url https://download.pytorch.org/whl/cpu && pip uninstall -y "
        "$(pip freeze | grep -oE '^(nvidia-[^=]+|triton) x')"
    )
    lines = fix_lines(fix, 80)
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert "'^(nvidia-[^=]+|triton) x'" in "\n".join(lines)  # the quoted word stays whole
    echoed = subprocess.run(
        ["sh", "-c", "\n".join(lines).replace("pip ", "echo pip ").replace("$(", "$(echo ")],
        capture_output=True,
        text=True,
    )
    expected = subprocess.run(
        ["sh", "-c", fix.replace("pip ", "echo pip ").replace("$(", "$(echo ")],
        capture_output=True,
        text=True,
    )
    assert echoed.stdout == expected.stdout and echoed.stdout
