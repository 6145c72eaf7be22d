"""The library names settings in its own words; only the command line says them as flags.

A message of the library (an error, a warning, a report line) that names a setting the
caller chose is a `Phrase`: as a str it says `overwrite`, and the command line says
`--overwrite`. So a Python user is never told to pass a flag, and `gpen` prints what it did.
"""

from __future__ import annotations

import ast
import json
import logging
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import gpen_cli
from gpen_cli.cli import app
from gpen_cli.cli.common import setup_logging
from gpen_cli.core.errors import OutputError, Phrase, joined, message_of

PACKAGE = Path(gpen_cli.__file__).parent
# The command line words flags itself; doctor's fixes are commands for the user to type.
FRONT_ENDS = ("cli", "doctor")
# Strings that hold a flag and are no message naming one, with why.
ALLOWED = {
    "weights/store.py": "whole `gpen weights download/add` commands for a shell",
    "review/assets.py": "CSS custom properties (var(--ink))",
}
FLAG = re.compile(r"(?<![\w-])--[a-z]")
QUOTED = re.compile(r"`[^`]*`")  # a command of another program, quoted: `ray start --port`


def library_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in FRONT_ENDS
        and path.relative_to(PACKAGE).as_posix() not in ALLOWED
    )


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes (they may say which option uses a function)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def flags_in(path: Path) -> list[str]:
    """`line: text` of every string in the module, docstrings aside, naming a --flag."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = docstrings(tree)
    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in skipped and FLAG.search(QUOTED.sub("", node.value))
    ]  # fmt: skip


def test_no_library_message_names_a_command_line_flag() -> None:
    named = {
        path.relative_to(PACKAGE).as_posix(): found
        for path in library_modules()
        if (found := flags_in(path))
    }
    assert not named, f"say the setting (a Phrase), not its flag: {named}"


def test_the_scan_sees_a_flag_in_a_message_built_apart_from_its_raise(tmp_path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        'def f(x):\n    """--docs may name options."""\n'
        '    e = f"{x} or use --ext same; `ray start --port`"\n    raise E(e)\n'
    )
    assert flags_in(module) == ["3: ' or use --ext same; `ray start --port`'"]


def test_a_phrase_is_the_settings_name_for_the_library_and_survives_pickling() -> None:
    error = OutputError(Phrase("out.png exists; pass `overwrite` to replace it", "overwrite"))
    assert str(error) == "out.png exists; pass overwrite to replace it"
    again = message_of(pickle.loads(pickle.dumps(error)))  # Ray carries errors and entries
    assert again.words(lambda s: f"--{s}") == "out.png exists; pass --overwrite to replace it"
    both = joined("a: ", again, "; then rerun")
    assert both.words(str.upper) == "a: out.png exists; pass OVERWRITE to replace it; then rerun"


def _photo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)


@pytest.mark.slow  # a model loads and runs
def test_gpen_batch_says_the_flag_on_screen_and_in_its_report(tmp_path, tiny_checkpoint) -> None:
    for name in ("x.jpg", "x.png"):
        _photo(tmp_path / "in" / name)
    report = tmp_path / "report.json"
    args = [
        "batch", tmp_path / "in", "-o", tmp_path / "out", "--ext", "png", "--report", report,
        "--model", tiny_checkpoint, "--aligned", "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1, result.output
    words = " ".join(result.output.split())  # rich wraps at the test console's width
    assert "would both be written to" in words and "rename one or use --ext same" in words
    (failed,) = [e for e in json.loads(report.read_text())["results"] if e["status"] == "failed"]
    assert failed["error"].endswith("rename one or use --ext same")


def test_a_library_warning_names_its_flag_on_the_command_line(capsys) -> None:
    setup_logging()
    try:
        logging.getLogger("gpen_cli.video.writer").warning(
            Phrase("`crf` has no effect with %s", "crf"), "ffv1"
        )
    finally:
        logging.getLogger().handlers.clear()
    assert "--crf has no effect with ffv1" in capsys.readouterr().err
