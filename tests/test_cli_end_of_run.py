"""How `gpen restore` and `gpen batch` end: where the outputs and the report are, and after
a first Ctrl-C (which finishes the photos in flight) the command that resumes the run.

They run with `--aligned` and the tiny random checkpoint, so no detector weights are needed.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.io.atomic import is_partial_file

PHOTOS = 24  # more than the engine admits at once: a stop leaves some undone


def write_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"p{index:02d}.png"
        pixels = np.random.default_rng(index).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(path), pixels)
        paths.append(path)
    return paths


def aligned(checkpoint: Path) -> list[str]:
    return ["--model", str(checkpoint), "--aligned", "--device", "cpu", "--batch-size", "1"]


def invoke_as_typed(monkeypatch, *args: str):
    """Run `gpen ARGS` with sys.argv as a shell would set it (the resume line reads it)."""
    monkeypatch.setattr(sys, "argv", ["gpen", *args])
    return CliRunner().invoke(app, list(args))


def interrupt_after_first_photo(monkeypatch) -> None:
    """A Ctrl-C arrives as soon as the first photo is written."""
    from gpen_cli.batch import steps

    real_finish, sent = steps.finish, threading.Event()

    def finish(*args):
        entry = real_finish(*args)
        if not sent.is_set():
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)
        return entry

    monkeypatch.setattr(steps, "finish", finish)


def resume_line(output: str, argv: list[str], width: int = 80) -> None:
    """The resume hint, then the command on lines of their own, none wider than the terminal
    unless one argument is, broken between arguments so that, pasted, they run `argv`."""
    lines = output.splitlines()
    hint = lines.index("resume: run the same command again (it skips the photos already written):")
    command = []
    for line in lines[hint + 1 :]:
        command.append(line)
        words = shlex.split(line.removesuffix("\\"))
        assert len(line) <= width or len(words) == 1, line
        if not line.endswith(" \\"):
            break
    assert command[0].startswith("  gpen ")
    assert as_the_shell_reads(command) == argv


def as_the_shell_reads(lines: list[str]) -> list[str]:
    """The words a POSIX shell makes of `lines` pasted at its prompt."""
    script = 'printf "%s\\0" ' + "\n".join(lines).lstrip()
    printed = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    return printed.decode().split("\0")[:-1]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["restore", "batch"])
def test_first_ctrl_c_finishes_in_flight_exits_130_and_the_same_command_resumes(
    tmp_path, monkeypatch, tiny_checkpoint, command
):
    from gpen_cli.batch import steps

    photos = write_photos(tmp_path / "in", PHOTOS)
    out, report = tmp_path / "out", tmp_path / "report.json"
    targets = [str(path) for path in photos] if command == "restore" else [str(tmp_path / "in")]
    args = [command, *targets, "-o", str(out), *aligned(tiny_checkpoint), "--report", str(report)]
    real_finish = steps.finish
    interrupt_after_first_photo(monkeypatch)

    first = invoke_as_typed(monkeypatch, *args)

    assert first.exit_code == 130, first.output
    assert (
        "stopping: finishing the faces being restored; press Ctrl-C again to stop now"
        in first.output
    )
    lines = first.output.splitlines()
    assert f"outputs: {out}" in lines and f"report: {report}" in lines
    resume_line(first.output, ["gpen", *args])
    written = {path.name for path in out.iterdir()}
    assert 1 <= len(written) < PHOTOS
    assert not any(is_partial_file(path) for path in out.iterdir())
    payload = json.loads(report.read_text())
    assert payload["interrupted"] is True
    assert {Path(r["output"]).name for r in payload["results"] if r["status"] == "ok"} == written

    monkeypatch.setattr(steps, "finish", real_finish)
    again = invoke_as_typed(monkeypatch, *args)

    assert again.exit_code == 0, again.output
    assert "resume:" not in again.output
    assert {path.name for path in out.iterdir()} == {path.name for path in photos}
    results = json.loads(report.read_text())["results"]
    if command == "restore":
        assert {Path(r["input"]).name for r in results if r["reason"] == "exists"} == written
        assert sum(r["status"] == "ok" for r in results) == PHOTOS - len(written)
    else:  # a resumed batch carries over what the stopped run reported: the whole job
        assert sum(r["status"] == "ok" for r in results) == PHOTOS


def test_restore_says_where_its_outputs_and_report_are(tmp_path, monkeypatch, tiny_checkpoint):
    (photo,) = write_photos(tmp_path / "in", 1)
    report = tmp_path / "report.json"

    result = invoke_as_typed(
        monkeypatch, "restore", str(photo), *aligned(tiny_checkpoint), "--report", str(report)
    )

    assert result.exit_code == 0, result.output
    output = photo.with_name("p00_gpen.png")
    assert output.is_file()
    lines = result.output.splitlines()
    assert lines[-2:] == [f"outputs: {output}", f"report: {report}"]
    entry = json.loads(report.read_text())["results"][0]
    assert (entry["status"], entry["reason"]) == ("ok", None)

    again = invoke_as_typed(monkeypatch, "restore", str(photo), *aligned(tiny_checkpoint))
    assert again.exit_code == 0, again.output
    assert again.output.count("1 skipped: output exists (--overwrite to redo)") == 1
    assert again.output.splitlines()[-1] == f"outputs: {output}"


def test_batch_says_where_its_outputs_are_and_counts_what_is_done(
    tmp_path, monkeypatch, tiny_checkpoint
):
    write_photos(tmp_path / "in", 3)
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "-o", str(out), *aligned(tiny_checkpoint)]

    first = invoke_as_typed(monkeypatch, *args)
    second = invoke_as_typed(monkeypatch, *args)

    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert first.output.splitlines()[-1] == f"outputs: {out}"
    assert second.output.count("3 skipped: outputs exist (--overwrite to redo)") == 1
    quiet = invoke_as_typed(monkeypatch, *args, "-q")
    assert quiet.exit_code == 0 and quiet.output == ""


def test_restore_progress_rows_say_faces_found_and_restored():
    from gpen_cli.batch.engine import PhotoProgress
    from gpen_cli.cli.runs import PhotoRows

    progress = Progress(console=Console(file=io.StringIO()), auto_refresh=False)
    rows = PhotoRows(progress, photos=1)
    source = "/photos/group [draft].jpg"

    rows(PhotoProgress(source, "started"))
    overall, row = progress.tasks
    assert not overall.visible  # one photo: its row says it all
    assert row.description == "group \\[draft].jpg: finding faces" and row.total is None
    rows(PhotoProgress(source, "found", faces_found=3))
    assert row.description == "group \\[draft].jpg: 3 faces, restoring" and row.total == 3
    rows(PhotoProgress(source, "restored", faces_found=3, faces_restored=2))
    assert row.completed == 2 and row.description.endswith("3 faces, restoring")
    rows(PhotoProgress(source, "restored", faces_found=3, faces_restored=3))
    assert row.description == "group \\[draft].jpg: 3 faces restored, saving"
    rows(PhotoProgress(source, "done", photos_done=1, faces_done=3))
    assert progress.tasks == [overall] and overall.completed == 1
    rows(PhotoProgress("/photos/one.jpg", "found", faces_found=1))
    assert progress.tasks[-1].description == "one.jpg: 1 face, restoring"


def test_a_run_that_wrote_nothing_does_not_point_at_an_output(
    tmp_path, monkeypatch, tiny_checkpoint
):
    """A photo that failed has no output: the end line says so instead of naming a file."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = invoke_as_typed(monkeypatch, "restore", str(bad), *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "outputs: none written"
    assert not list(tmp_path.glob("bad_gpen*"))


def test_a_path_too_long_for_the_table_is_printed_whole_on_a_line_of_its_own(
    tmp_path, monkeypatch, tiny_checkpoint
):
    """At 80 columns a table would fold the output's path inside its cell, and a line with
    the path at its end would be broken by the terminal mid-word: the path goes on the next
    line, whole (the terminal wraps it, and copies it whole)."""
    photo = write_photos(tmp_path / "in", 1)[0]
    folder = tmp_path / "a-folder-name-long-enough-that-the-table-of-results-cannot-fit"
    result = invoke_as_typed(monkeypatch, "restore", str(photo), "-o", f"{folder}/",
                             *aligned(tiny_checkpoint))  # fmt: skip
    assert result.exit_code == 0, result.output
    written = folder / photo.name
    assert written.is_file()
    lines = result.output.splitlines()
    at = next(index for index, line in enumerate(lines) if line.startswith("ok "))
    assert lines[at].split() == ["ok", "p00.png", "0", "faces", lines[at].split()[4], "s"]
    assert lines[at + 1] == f"-> {written}"  # longer than the terminal: not indented
    assert "1 ok, 0 no face, 0 skipped, 0 failed" in result.output
    for line in lines:  # longer than the terminal only where one path is
        assert len(line) <= 80 or len(line) - len(line.split()[-1]) <= len("outputs: "), line


def test_a_rerun_over_restored_photos_says_so_in_one_line(tmp_path, monkeypatch, tiny_checkpoint):
    photos = [str(path) for path in write_photos(tmp_path / "in", 3)]
    first = invoke_as_typed(monkeypatch, "restore", *photos, *aligned(tiny_checkpoint))
    assert first.exit_code == 0, first.output

    again = invoke_as_typed(monkeypatch, "restore", *photos, *aligned(tiny_checkpoint))

    assert again.exit_code == 0, again.output
    lines = [line for line in again.output.splitlines() if line]
    assert lines[0] == "3 skipped: outputs exist (--overwrite to redo)"
    assert lines[1] == "0 ok, 0 no face, 3 skipped, 0 failed; 0 faces in 0.0 s"
    assert lines[2:] == [f"outputs: {tmp_path / 'in'}, as NAME_gpen.EXT"]


def test_a_skip_names_its_input(capsys):
    from gpen_cli.cli.runs import print_problems
    from gpen_cli.pipeline.report import ReportEntry

    entry = ReportEntry("/photos/notes.txt", None, "skipped", error="not an image (.txt)")
    print_problems([entry], quiet=False)
    assert capsys.readouterr().err == "skipped: /photos/notes.txt: not an image (.txt)\n"


def test_the_resume_command_breaks_between_arguments_and_pastes_as_one(tmp_path):
    from gpen_cli.cli.runs import command_lines

    long = str(tmp_path / ("a-folder-name-longer-than-the-terminal-" * 3)) + "/p.png"
    argv = ["gpen", "restore", "my photo.jpg", long, "-o", "out dir/", "--model", "GPEN-BFR-256"]
    argv += ["--detector", "retinaface-mobile", "--upscale", "2", "--bg-upsampler", "none"]

    lines = command_lines(argv, 40)

    assert lines[0].startswith("  gpen restore")
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert all(len(line) <= 40 for line in lines if long not in line)
    assert [line for line in lines if long in line] == [f"    {long} \\"]
    assert as_the_shell_reads(lines) == argv


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_the_end_lines_say_where_the_comparisons_and_face_crops_went(
    tmp_path, monkeypatch, tiny_checkpoint, command
):
    write_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    source = [str(tmp_path / "in")] if command == "batch" else sorted(
        str(path) for path in (tmp_path / "in").iterdir()
    )  # fmt: skip
    args = [command, *source, "-o", f"{out}/", *aligned(tiny_checkpoint)]

    result = invoke_as_typed(monkeypatch, *args, "--compare", "--save-faces")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index(f"outputs: {out}")
    assert lines[at + 1 : at + 3] == [
        f"compare: {out / 'gpen-compare'}",
        f"faces: {out / 'gpen-faces'}",
    ]
    assert (out / "gpen-compare" / "p00.png.jpg").is_file()
    assert (out / "gpen-faces" / "p00.png").is_dir()
    plain = invoke_as_typed(monkeypatch, *args, "--overwrite")
    assert not any(line.startswith(("compare:", "faces:")) for line in plain.output.splitlines())


def test_a_comparison_says_which_side_is_before_and_which_after():
    from gpen_cli.pipeline.outputs import side_by_side

    before = np.full((200, 150, 3), 120, np.uint8)
    after = np.full((200, 150, 3), 60, np.uint8)

    pair = side_by_side(before, after)

    assert (before == 120).all() and (after == 60).all()  # the result itself is not drawn on
    left, right = pair[:, :150], pair[:, 158:]
    letters = []
    for half, plain in ((left, 120), (right, 60)):
        corner = half[:40, :80]
        assert (corner == 0).any() and (corner > 200).any(), "a white label on black"
        assert (half[60:] == plain).all() and (half[:, 100:] == plain).all()
        letters.append(corner > 200)
    assert (letters[0] != letters[1]).any()  # two words, not one


def test_quiet_prints_the_errors_only(tmp_path, monkeypatch, tiny_checkpoint):
    good, done = write_photos(tmp_path / "in", 2)
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    first = invoke_as_typed(monkeypatch, "restore", str(done), *aligned(tiny_checkpoint))
    assert first.exit_code == 0, first.output

    args = ["restore", str(good), str(done), str(bad), *aligned(tiny_checkpoint), "-q"]
    result = invoke_as_typed(monkeypatch, *args, "--bg-upsampler", "none")

    assert result.exit_code == 1
    lines = result.output.splitlines()  # no skip, note, table or end line: the error alone
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}"), result.output
    assert good.with_name("p00_gpen.png").is_file()


def test_an_output_path_that_nearly_fills_a_line_is_indented_less_not_broken(monkeypatch):
    from gpen_cli.cli import restore
    from gpen_cli.pipeline.report import ReportEntry

    screen = Console(file=io.StringIO(), width=80)
    monkeypatch.setattr(restore, "console", screen)
    path = "/photos/" + "x" * 63 + ".jpg"  # 75 characters: "-> " and it fill 78 columns
    restore.print_result_line(ReportEntry("/in/a.jpg", path, "ok", seconds=1.0))
    assert screen.file.getvalue().splitlines()[1] == f"  -> {path}"
