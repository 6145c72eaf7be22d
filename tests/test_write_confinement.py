"""A run writes only what the user named: the report never lands on an input, an output or a
device, no link inside the output tree leads a write elsewhere, and extras never collide.

Every case hashes the files in and around the folders involved before and after the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from test_cli_safety import aligned, error_lines, invoke, write_photo


def tree_digest(*folders: Path) -> dict[str, str]:
    """Every file under `folders` (links not followed), by path, with its content's hash."""
    digest: dict[str, str] = {}
    for folder in folders:
        for base, _, names in os.walk(folder):
            for name in names:
                path = Path(base) / name
                if path.is_symlink():
                    digest[str(path)] = f"link -> {os.readlink(path)}"
                else:
                    digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


# --------------------------------------------------------------------------- the report


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_report_named_like_a_photo_is_refused_before_any_work(tmp_path, tiny_checkpoint, command):
    photos = tmp_path / "in"
    first, second = write_photo(photos / "a.jpg"), write_photo(photos / "b.jpg", seed=1)
    before = tree_digest(tmp_path)
    # What `gpen restore --report *.jpg` gives once the shell has expanded it.
    target = [first, second] if command == "restore" else [photos]
    result = invoke(command, *target, "-o", tmp_path / "out", "--report", first,
                    *aligned(tiny_checkpoint))  # fmt: skip
    assert result.exit_code == 2, result.output
    expected = {
        "restore": f"--report {first}: the report is JSON; name a .json file",
        "batch": f"--report {first} is inside the input folder {photos}, which is never "
        "written to; put it elsewhere",
    }[command]
    assert error_lines(result.output) == [f"error: {expected}"]
    assert tree_digest(tmp_path) == before


def test_report_onto_the_input_or_the_output_is_refused(tmp_path, tiny_checkpoint):
    photo = write_photo(tmp_path / "a.png")
    data = tmp_path / "notes.json"
    data.write_text('{"mine": true}')
    before = tree_digest(tmp_path)
    out = tmp_path / "out.png"
    for report, expected in [
        (photo, f"--report {photo}: the report is JSON; name a .json file"),
        (out, f"--report {out}: the report is JSON; name a .json file"),
        (data, f"--report {data}: is the input {data}; inputs are never replaced"),
    ]:
        inputs = [photo, data] if report == data else [photo]
        result = invoke("restore", *inputs, "-o", tmp_path / "o", "--report", report,
                        "--overwrite", *aligned(tiny_checkpoint))  # fmt: skip
        assert result.exit_code == 2, result.output
        assert error_lines(result.output) == [f"error: {expected}"]
    assert tree_digest(tmp_path) == before


def test_existing_file_is_replaced_only_with_overwrite_or_when_it_is_our_report(
    tmp_path, tiny_checkpoint
):
    photo = write_photo(tmp_path / "in" / "a.png")
    report = tmp_path / "results.json"
    report.write_text('{"someone else": "data"}')
    args = ["restore", photo, "-o", tmp_path / "out", "--report", report, *aligned(tiny_checkpoint)]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert error_lines(result.output) == [
        f"error: --report {report}: exists and is not a report of gpen restore; name another "
        "file, or pass --overwrite to replace it"
    ]
    assert report.read_text() == '{"someone else": "data"}'
    assert not (tmp_path / "out").exists()

    result = invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["command"] == "restore"
    # A report this command wrote is rewritten by the next run (a resumed job), and not by
    # another command's run.
    assert invoke(*args).exit_code == 0
    result = invoke("batch", tmp_path / "in", "-o", tmp_path / "bout", "--report", report,
                    *aligned(tiny_checkpoint))  # fmt: skip
    assert result.exit_code == 2 and "not a report of gpen batch" in result.output


@pytest.mark.parametrize("kind", ["fifo", "link", "device"])
def test_report_never_replaces_a_device_fifo_or_link(tmp_path, tiny_checkpoint, kind):
    photo = write_photo(tmp_path / "in" / "a.png")
    report = tmp_path / "r.json"
    victim = tmp_path / "victim.json"
    if kind == "fifo":
        os.mkfifo(report)
        expected = "is not a regular file (a device, FIFO or socket); never replaced"
    elif kind == "link":
        victim.write_text("{}")
        report.symlink_to(victim)
        expected = "is a symbolic link; name the file itself"
    else:  # a device node of its own, named like a report: never the machine's /dev/null
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(report, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        expected = "is not a regular file (a device, FIFO or socket); never replaced"
    result = invoke("restore", photo, "-o", tmp_path / "out", "--report", report,
                    "--overwrite", *aligned(tiny_checkpoint))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert error_lines(result.output) == [f"error: --report {report}: {expected}"]
    if kind == "fifo":
        assert Path(report).is_fifo()
    elif kind == "link":
        assert report.is_symlink() and victim.read_text() == "{}"
    else:
        assert report.is_char_device()


def test_report_written_by_the_library_never_replaces_a_fifo(tmp_path):
    from gpen_cli.core.errors import OutputError
    from gpen_cli.pipeline.report import write_report

    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file; it is never replaced"):
        write_report(fifo, [])
    assert fifo.is_fifo()


# ------------------------------------------------------------------ links in the output tree


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_link_in_the_output_tree_never_leads_a_write_into_the_inputs(
    tmp_path, tiny_checkpoint, overwrite
):
    photos = tmp_path / "in"
    write_photo(photos / "c.png")
    write_photo(photos / "sub" / "c.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(photos)  # out/sub/c.png is in/c.png
    before = tree_digest(photos)
    result = invoke("batch", photos, "-o", out, *aligned(tiny_checkpoint),
                    *(["--overwrite"] if overwrite else []))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert error_lines(result.output) == [
        f"error: {out / 'sub' / 'c.png'}: {out / 'sub'} is a symbolic link; gpen follows no "
        f"link inside the output folder {out}, so nothing was written through it"
    ]
    assert "already done" not in result.output
    assert tree_digest(photos) == before
    assert (out / "c.png").is_file()  # the photo outside the link was restored


@pytest.mark.parametrize("extra", ["--compare", "--save-faces"])
def test_a_linked_extras_folder_is_refused(tmp_path, tiny_checkpoint, extra):
    photos = tmp_path / "in"
    photo = write_photo(photos / "b.png")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    folder = "gpen-compare" if extra == "--compare" else "gpen-faces"
    (out / folder).symlink_to(photos if extra == "--compare" else victim)
    before = tree_digest(photos, victim)
    result = invoke("restore", photo, "-o", out, extra, "--overwrite", *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result.output)
    assert f"{out / folder} is a symbolic link; gpen follows no link" in line
    assert tree_digest(photos, victim) == before
    assert not (out / "b.png").exists()  # written last, only once the extras are


def test_a_dangling_link_at_the_output_name_is_refused_by_name(tmp_path, tiny_checkpoint):
    photo = write_photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(tmp_path / "nowhere" / "a.png")
    result = invoke("restore", photo, "-o", out, *aligned(tiny_checkpoint))
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result.output)
    assert line.startswith(f"error: {out / 'a.png'}: is a symbolic link; gpen follows no link")
    assert "meanwhile" not in result.output
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------- extras of one stem


@pytest.mark.parametrize("command", ["restore", "batch"])
def test_photos_sharing_a_stem_get_extras_of_their_own(tmp_path, tiny_checkpoint, command):
    photos = tmp_path / "in"
    jpg, png = write_photo(photos / "p.jpg"), write_photo(photos / "p.png", seed=1)
    out = tmp_path / "out"
    target = [jpg, png] if command == "restore" else [photos]
    result = invoke(command, *target, "-o", out, "--compare", "--save-faces",
                    *aligned(tiny_checkpoint))  # fmt: skip
    assert result.exit_code == 0, result.output
    compares = sorted(path.name for path in (out / "gpen-compare").iterdir())
    assert compares == ["p.jpg.jpg", "p.png.jpg"]
    assert sorted(path.name for path in (out / "gpen-faces").iterdir()) == ["p.jpg", "p.png"]
    crops = [
        (out / "gpen-faces" / name / "face00_input.png").read_bytes() for name in ("p.jpg", "p.png")
    ]
    assert crops[0] != crops[1]  # each photo's own crop, not one written twice
