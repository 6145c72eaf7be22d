"""An error nobody foresaw is one line on stderr naming the file that holds its trace."""

from __future__ import annotations

import sys

import pytest

from gpen_cli.cli import main
from gpen_cli.weights import store


@pytest.fixture
def gpen(monkeypatch, tmp_path):
    """`gpen ARGS` run by the command's own entry point; its log folder inside tmp_path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("GPEN_MALLOC_POLICY", "off")

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["gpen", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        return exited.value.code

    return run


def _raise(exc: BaseException):
    def broken(*args, **kwargs):
        raise exc

    return broken


def test_an_unexpected_error_is_one_line_and_its_trace_is_kept(gpen, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(store, "resolve_weights_dir_and_source", _raise(RuntimeError("boom")))
    assert gpen("weights", "list") == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("error: unexpected RuntimeError: boom (full trace in "), lines[0]
    logs = list((tmp_path / "state" / "gpen-cli" / "log").iterdir())
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    trace = logs[0].read_text()
    assert trace.startswith("Traceback") and "resolve_weights_dir_and_source" not in lines[0]
    assert "RuntimeError: boom" in trace and "in broken" in trace


def test_a_trace_that_cannot_be_saved_is_said_and_the_line_stays_one(
    gpen, monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(store, "resolve_weights_dir_and_source", _raise(ValueError("bad")))
    (tmp_path / "state").write_text("a file where the log folder would go")
    assert gpen("weights", "list") == 1
    err = capsys.readouterr().err
    assert err == "error: unexpected ValueError: bad (its trace could not be saved)\n", err


def test_ctrl_c_is_still_exit_130_with_no_trace(gpen, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(store, "resolve_weights_dir_and_source", _raise(KeyboardInterrupt()))
    assert gpen("weights", "list") == 130
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
