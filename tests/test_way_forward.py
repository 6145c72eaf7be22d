"""What a newcomer reads: counts in words ("1 face"), and errors that offer a way forward
without the internet (the detector already here, Lanczos for upscaling), naming the photo
they are about."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rich.progress import Progress
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.core.words import count
from gpen_cli.weights import download


def invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def write_photo(path: Path, size: int = 64) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def offline(monkeypatch):
    """Every download fails at once, as on a machine without internet."""

    def fetch(spec, folder, progress=True, url=None):
        raise download.DownloadError(spec.filename, url, "no network in this test")

    monkeypatch.setattr(download, "_fetch", fetch)


def test_counts_are_singular_for_one():
    assert [count(n, "face") for n in (0, 1, 2)] == ["0 faces", "1 face", "2 faces"]
    assert count(1, "frame") == "1 frame" and count(3, "warning") == "3 warnings"


def test_a_one_frame_film_says_1_frame_1_face(capsys, tmp_path):
    from gpen_cli.cli.video import _print_outcome

    job = SimpleNamespace(output=tmp_path / "f.mp4", options=SimpleNamespace(segment=None))
    outcome = SimpleNamespace(frames=1, faces=1, seconds=0.5, faces_per_second=2.0,
                              segments_done=1, segments=1, interrupted=False)  # fmt: skip
    _print_outcome(job, outcome)
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 frame, 1 face in 0.5 s (2.00 faces/s); 1 of 1 segment was done already" in printed


def test_the_progress_bar_says_1_face():
    from gpen_cli.cli.common import FacesColumn

    progress = Progress()
    task = progress.add_task("Restoring", total=3, faces=1, rate=0.5)
    assert FacesColumn().render(progress.tasks[task]).plain == "1 face, 0.50 faces/s"


def test_a_missing_default_detector_names_the_one_installed(tmp_path, tiny_checkpoint, offline):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "face_detection_yunet.onnx").write_bytes(b"stands for the YuNet weights")
    photo = write_photo(tmp_path / "a.png")
    result = invoke("restore", photo, "--model", tiny_checkpoint, "--device", "cpu",
                    "--mask", "rect", "--weights-dir", folder)  # fmt: skip
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert line.startswith("error: --detector: detection_Resnet50_Final.pth not found"), line
    assert line.endswith("; or choose yunet: its weights are here."), line
    assert not (tmp_path / "a_gpen.png").exists()


def test_upscale_without_its_upsampler_suggests_none(tmp_path, tiny_checkpoint, offline):
    photo = write_photo(tmp_path / "a.png")
    result = invoke("restore", photo, "--model", tiny_checkpoint, "--device", "cpu",
                    "--aligned", "--upscale", "2")  # fmt: skip
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert line.startswith("error: --bg-upsampler: realesrnet_x2.pth not found"), line
    assert line.endswith("; or set it to none to upscale with Lanczos, offline."), line
    again = invoke("restore", photo, "--model", tiny_checkpoint, "--device", "cpu",
                   "--aligned", "--upscale", "2", "--bg-upsampler", "none")  # fmt: skip
    assert again.exit_code == 0, again.output


class LargeFace:
    """A detector that finds one face filling most of any picture."""

    def detect(self, image):
        from gpen_cli.stages.faces import Face

        height, width = image.shape[:2]
        box = np.array([0.1 * width, 0.1 * height, 0.9 * width, 0.9 * height])
        points = np.array([[0.37, 0.42], [0.63, 0.42], [0.5, 0.55], [0.4, 0.7], [0.6, 0.7]])
        return [Face(box, 0.99, points * [width, height])]


def test_the_faces_enlarged_warning_names_the_photo(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(
        "gpen_cli.pipeline.resolve.load_detector", lambda config, device: LargeFace()
    )
    monkeypatch.chdir(tmp_path)
    write_photo(tmp_path / "family.png", size=96)
    result = invoke("restore", "family.png", "--model", tiny_checkpoint, "--device", "cpu",
                    "--mask", "rect", "--upscale", "2", "--bg-upsampler", "none")  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert said.count("enlarged when pasted") == 1, said
    assert "WARNING family.png: faces up to 153 px at the upscaled size are larger" in said


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["video", "film.mp4", "--crf", "70"], "error: --crf must be 0 to 63, got 70"),
        (["batch", "in", "-o", "out", "--model-actors", "0"], "--model-actors 1 or more"),
        (["restore", "a.png", "--fidelity-weight", "2"], "error: --fidelity-weight: must be"),
        (["restore", "a.png", "--tile", "8"], "error: --tile: must be at least 16, got 8"),
    ],
)
def test_a_value_out_of_range_is_one_line(tmp_path, monkeypatch, args, message):
    """The ranges are said in the help rather than as Typer's range types (which squeeze
    the help at 80 columns): a value outside is still refused, in one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[0].startswith("error: ") and message in result.output
