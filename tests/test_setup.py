"""A quiet set-up: the install prints a few lines and no deprecation, and the README says how
to get what it mentions (the detector weights some tests use, shell completion)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import REPO
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.weights.registry import get_spec


def test_the_license_is_an_spdx_expression_setuptools_takes_without_a_warning():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # a table is deprecated by setuptools 77
    assert "setuptools>=77" in project["build-system"]["requires"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_runs_pip_quietly_and_says_what_it_does(tmp_path):
    venv = tmp_path / "venv"
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "install", f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
    )  # as typed in a shell, also when the suite itself runs under `make test`
    assert planned.returncode == 0, planned.stderr
    pips = [line for line in planned.stdout.splitlines() if " -m pip install " in line]
    assert len(pips) == 2 and all(" --quiet " in line for line in pips), planned.stdout
    assert planned.stdout.startswith(
        f'echo "make install: gpen-cli and its test, Ray and ONNX extras into {venv}'
    )


def test_the_readme_says_how_to_get_the_detector_weights_and_shell_completion():
    readme = (REPO / "README.md").read_text()
    assert "`gpen weights download retinaface-mobile yunet`" in readme
    for name in ("retinaface-mobile", "yunet"):
        get_spec(name, "detector")  # names the registry knows
    assert "`gpen --install-completion`" in readme and "`gpen --show-completion`" in readme
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).output
