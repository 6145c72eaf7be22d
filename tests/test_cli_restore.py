"""`gpen restore` as a user runs it: files on disk, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_as, photo_path
from PIL import Image
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.models import build_gpen

runner = CliRunner()


@pytest.fixture(scope="module")
def weights_dir(pipeline_weights_dir) -> Path:
    return pipeline_weights_dir


def run(*args: str, checkpoint: Path, weights_dir: Path):
    return runner.invoke(
        app,
        [
            "restore",
            *args,
            "--model",
            str(checkpoint),
            "--weights-dir",
            str(weights_dir),
            "--detector",
            "retinaface-mobile",
            "--device",
            "cpu",
        ],
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def portrait(tmp_path) -> Path:
    return photo_as("portrait", tmp_path / "in" / "portrait.jpg")


@pytest.mark.slow
def test_restores_a_photo_with_report_compare_and_faces(
    portrait, tmp_path, tiny_checkpoint, weights_dir
):
    before = digest(portrait.parent)
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    result = run(
        str(portrait),
        "-o",
        str(out),
        "--compare",
        "--save-faces",
        "--report",
        str(report),
        checkpoint=tiny_checkpoint,
        weights_dir=weights_dir,
    )
    assert result.exit_code == 0, result.output
    restored = cv2.imread(str(out / "portrait.jpg"))
    original = cv2.imread(str(portrait))
    assert restored.shape == original.shape
    assert np.abs(restored.astype(int) - original).mean() > 0.5  # the face was replaced
    assert (out / "gpen-compare" / "portrait.jpg.jpg").is_file()
    assert sorted(p.name for p in (out / "gpen-faces" / "portrait.jpg").iterdir()) == [
        "face00_input.png",
        "face00_restored.png",
    ]
    entry = json.loads(report.read_text())["results"][0]
    assert entry["status"] == "ok" and entry["faces"]["count"] == 1 and entry["error"] is None
    assert entry["output"] == str(out / "portrait.jpg") and entry["seconds"] > 0
    assert len(entry["faces"]["boxes"][0]) == 4 and 0.9 <= entry["faces"]["scores"][0] <= 1
    assert digest(portrait.parent) == before, "the input folder was modified"
    assert not list(out.rglob("*.partial"))


@pytest.mark.slow
def test_existing_output_needs_overwrite_and_input_is_never_replaced(
    portrait, tiny_checkpoint, weights_dir
):
    first = run(str(portrait), checkpoint=tiny_checkpoint, weights_dir=weights_dir)
    assert first.exit_code == 0, first.output
    output = portrait.with_name("portrait_gpen.jpg")
    stamp = output.read_bytes()
    again = run(str(portrait), checkpoint=tiny_checkpoint, weights_dir=weights_dir)
    assert again.exit_code == 0 and "1 skipped: output exists (--overwrite to redo)" in again.output
    assert output.read_bytes() == stamp
    original = portrait.read_bytes()
    onto_input = run(
        str(portrait),
        "-o",
        str(portrait),
        "--overwrite",
        checkpoint=tiny_checkpoint,
        weights_dir=weights_dir,
    )
    # Refused at once, before any model is loaded, without advising --overwrite.
    assert onto_input.exit_code == 2, onto_input.output
    assert f"the output {portrait} is the input {portrait}" in onto_input.output
    assert "portrait_gpen.jpg" in onto_input.output
    assert portrait.read_bytes() == original


@pytest.mark.slow
def test_bad_inputs_give_one_line_errors_and_exit_1(
    tmp_path, portrait, tiny_checkpoint, weights_dir
):
    folder = portrait.parent
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a picture")
    (folder / "truncated.png").write_bytes(
        b"" or cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()[:60]
    )
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "noise.png"), noise)
    before = digest(folder)
    names = ["empty.jpg", "notes.jpg", "truncated.png", "tiny.png", "noise.png", "portrait.jpg"]
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    result = run(
        *[str(folder / n) for n in names],
        "-o",
        str(out),
        "--report",
        str(report),
        checkpoint=tiny_checkpoint,
        weights_dir=weights_dir,
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    statuses = {Path(e["input"]).name: e for e in json.loads(report.read_text())["results"]}
    for name in ["empty.jpg", "notes.jpg", "truncated.png", "tiny.png"]:
        assert statuses[name]["status"] == "failed", name
        assert name in statuses[name]["error"]
    assert statuses["noise.png"]["status"] == "no_face"
    assert np.array_equal(cv2.imread(str(out / "noise.png")), noise), (
        "a photo without faces comes back unchanged"
    )
    assert statuses["portrait.jpg"]["status"] == "ok"
    assert digest(folder) == before


def test_16_bit_alpha_grey_and_exif_photos(tmp_path, portrait, tiny_checkpoint, weights_dir):
    base = cv2.imread(str(portrait))
    folder = tmp_path / "kinds"
    folder.mkdir()
    deep = base.astype(np.uint16) * 257
    cv2.imwrite(str(folder / "deep.png"), deep)
    alpha = np.linspace(0, 255, base.shape[1], dtype=np.uint8)[None, :].repeat(base.shape[0], 0)
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([base, alpha]))
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(base, cv2.COLOR_BGR2GRAY))
    # Stored on its side with an EXIF tag saying "rotate 90° clockwise to view".
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(base[:, :, ::-1], 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(folder / "rotated.jpg", exif=exif, quality=95)

    out = tmp_path / "out"
    report = tmp_path / "r.json"
    names = ["deep.png", "alpha.png", "grey.png", "rotated.jpg"]
    result = run(
        *[str(folder / n) for n in names],
        "-o",
        str(out),
        "--report",
        str(report),
        "--mask",
        "rect",
        checkpoint=tiny_checkpoint,
        weights_dir=weights_dir,
    )
    assert result.exit_code == 0, result.output
    statuses = {
        Path(e["input"]).name: e["status"] for e in json.loads(report.read_text())["results"]
    }
    assert statuses == dict.fromkeys(names, "ok")

    deep_out = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep_out.dtype == np.uint16 and deep_out.shape == deep.shape
    alpha_out = cv2.imread(str(out / "alpha.png"), cv2.IMREAD_UNCHANGED)
    assert alpha_out.shape[2] == 4 and np.array_equal(alpha_out[:, :, 3], alpha)
    assert cv2.imread(str(out / "grey.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    upright = cv2.imread(str(out / "rotated.jpg"), cv2.IMREAD_UNCHANGED)
    assert upright.shape == base.shape, "EXIF orientation applied: the output is upright"


def test_missing_weights_stop_before_any_output(tmp_path, portrait):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "restore",
            str(portrait),
            "-o",
            str(out),
            "--model",
            "GPEN-BFR-256",
            "--weights-dir",
            str(tmp_path / "empty-weights"),
        ],
        env={"GPEN_WEIGHTS_BASE_URL": "http://127.0.0.1:9/"},
    )
    assert result.exit_code == 2
    assert "GPEN-BFR-256.pth" in result.output and "gpen weights download" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_aligned_crops_skip_detection(tmp_path, tiny_checkpoint):
    crop = tmp_path / "face.png"
    cv2.imwrite(str(crop), np.random.default_rng(1).integers(0, 256, (100, 100, 3), dtype=np.uint8))
    result = runner.invoke(
        app,
        [
            "restore",
            str(crop),
            "--aligned",
            "--model",
            str(tiny_checkpoint),
            "--weights-dir",
            str(tmp_path / "no-detector-here"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "face_gpen.png")).shape == (64, 64, 3)


def test_unknown_options_are_usage_errors(portrait, tiny_checkpoint, weights_dir):
    assert (
        run(
            str(portrait), "--ext", "gif", checkpoint=tiny_checkpoint, weights_dir=weights_dir
        ).exit_code
        == 2
    )
    assert (
        run(
            str(portrait),
            "--fidelity-weight",
            "2",
            checkpoint=tiny_checkpoint,
            weights_dir=weights_dir,
        ).exit_code
        == 2
    )
    bad_model = runner.invoke(app, ["restore", str(portrait), "--model", "nope.pth"])
    assert bad_model.exit_code == 2 and "nope.pth" in bad_model.output


@pytest.mark.slow
def test_end_to_end_on_the_test_photos_with_gpen_256(tmp_path, weights_dir):
    torch.manual_seed(0)
    checkpoint = tmp_path / "GPEN-BFR-256-random.pth"
    torch.save(build_gpen(256, channel_multiplier=1, narrow=0.5).state_dict(), checkpoint)
    paths = [photo_path("group"), photo_path("portrait")]
    inputs = [str(p) for p in paths]
    report = tmp_path / "report.json"
    result = run(
        *inputs,
        "-o",
        str(tmp_path / "out"),
        "--report",
        str(report),
        "--batch-size",
        "8",
        "--mask",
        "rect",
        checkpoint=checkpoint,
        weights_dir=weights_dir,
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(report.read_text())["results"]
    assert [e["status"] for e in entries] == ["ok", "ok"]
    assert [e["faces"]["count"] for e in entries] == [3, 1]
    for path in paths:
        written = cv2.imread(str(tmp_path / "out" / path.name))
        assert written.shape == cv2.imread(str(path)).shape


@pytest.mark.slow
def test_photo_without_faces_is_passed_through_byte_for_byte(
    tmp_path, tiny_checkpoint, weights_dir
):
    noise = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    source = tmp_path / "landscape.jpg"
    cv2.imwrite(str(source), noise)
    result = run(str(source), checkpoint=tiny_checkpoint, weights_dir=weights_dir)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "landscape_gpen.jpg").read_bytes() == source.read_bytes()
    as_png = run(str(source), "--ext", "png", checkpoint=tiny_checkpoint, weights_dir=weights_dir)
    assert as_png.exit_code == 0, as_png.output
    assert np.array_equal(cv2.imread(str(tmp_path / "landscape_gpen.png")), cv2.imread(str(source)))


def test_help_version_and_short_help_flag():
    from gpen_cli import __version__

    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"gpen-cli {__version__}"
    for command in ("restore", "batch", "bench", "doctor"):
        shown = runner.invoke(app, [command, "-h"], env={"COLUMNS": "80"})
        assert shown.exit_code == 0, shown.output
        assert f"$ gpen {command}" in shown.output  # examples first
        assert "<bool>" not in shown.output and "<str>" not in shown.output


def test_rerun_skips_its_own_outputs_and_o_file_needs_one_input(
    tmp_path, portrait, tiny_checkpoint, weights_dir
):
    other = portrait.with_name("second.jpg")
    other.write_bytes(portrait.read_bytes())
    first = run(str(portrait), str(other), "--mask", "rect",
                checkpoint=tiny_checkpoint, weights_dir=weights_dir)  # fmt: skip
    assert first.exit_code == 0, first.output
    made = sorted(p.name for p in portrait.parent.iterdir())
    assert made == ["portrait.jpg", "portrait_gpen.jpg", "second.jpg", "second_gpen.jpg"]
    # `gpen restore in/*.jpg` again: the earlier outputs are among the inputs now.
    again = run(*sorted(str(p) for p in portrait.parent.glob("*.jpg")), "--overwrite",
                "--mask", "rect", checkpoint=tiny_checkpoint, weights_dir=weights_dir)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "the output of" in again.output and "from an earlier run" in again.output
    assert sorted(p.name for p in portrait.parent.iterdir()) == made  # no *_gpen_gpen.jpg
    to_file = run(str(portrait), str(other), "-o", str(tmp_path / "one.png"),
                  checkpoint=tiny_checkpoint, weights_dir=weights_dir)  # fmt: skip
    assert to_file.exit_code == 2 and "2 inputs need an output folder" in to_file.output
    assert not (tmp_path / "one.png").exists()
