"""`gpen video` on small films made here from the test portrait (FFV1 for pixel checks).

Each film is 25 frames at 256 px and 25 fps: ten with a face, five without, ten with a
face, and a one-second sine tone.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", minversion="18.1", reason="gpen video needs PyAV 18.1+")

from conftest import photo_path, pipeline_detector  # noqa: E402
from typer.testing import CliRunner  # noqa: E402
from videoclips import (  # noqa: E402
    audio_packets,
    face_picture,
    faceless_picture,
    make_film,
    read_frames,
)

from gpen_cli.cli import app  # noqa: E402
from gpen_cli.pipeline.restorer import FaceRestorer  # noqa: E402
from gpen_cli.stages.faces import Face  # noqa: E402
from gpen_cli.video import VideoOptions, Window, partial_path, plan_video  # noqa: E402
from gpen_cli.video.job import segments_dir  # noqa: E402
from gpen_cli.video.pipeline import forward_in_order  # noqa: E402
from gpen_cli.video.smoothing import LandmarkSmoother  # noqa: E402

FACE, NO_FACE = list(range(10)) + list(range(15, 25)), list(range(10, 15))


class Identity(torch.nn.Module):
    """A "restorer" that returns its input."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def weights_dir(pipeline_weights_dir) -> Path:
    return pipeline_weights_dir


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    face = face_picture(photo_path("portrait"), (256, 256))
    return [face] * 10 + [faceless_picture((256, 256))] * 5 + [face] * 10


@pytest.fixture(scope="module")
def film(tmp_path_factory, pictures) -> Path:
    path = tmp_path_factory.mktemp("films") / "film.mkv"
    make_film(path, pictures, jitter=0.4, noise=2.0)
    return path


@pytest.fixture(scope="module")
def rgb_film(tmp_path_factory, pictures) -> Path:
    """The same film stored as RGB, so decoding gives back exactly the pictures encoded."""
    path = tmp_path_factory.mktemp("films") / "rgb.mkv"
    make_film(path, pictures, pix_fmt="bgr0", jitter=0.4, noise=2.0)
    return path


def restorer(model, weights_dir: Path) -> FaceRestorer:
    return FaceRestorer(
        model,
        pipeline_detector(),  # the frames are the test portrait, scaled: replayable
        weights_dir=weights_dir,
        device="cpu",
        batch_size=4,
        mask="rect",
    )


@pytest.fixture(scope="module")
def gpen(tiny_checkpoint, weights_dir) -> FaceRestorer:
    return restorer(tiny_checkpoint, weights_dir)


def restore(source: Path, output: Path, model: FaceRestorer, **options):
    job = plan_video(source, output, VideoOptions(**options))
    return job, job.run(model)


@pytest.mark.slow
def test_timing_and_sound_kept_faces_changed_faceless_frames_equal(film, gpen, tmp_path):
    output = tmp_path / "out.mkv"
    _, outcome = restore(film, output, gpen)
    assert outcome.frames == 25 and outcome.faces == 20 and not outcome.interrupted
    with av.open(str(film)) as a, av.open(str(output)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate == 25
        assert b.duration == a.duration
        assert b.streams.video[0].codec_context.name == "ffv1"  # the input's codec by default
    assert audio_packets(output) == audio_packets(film) != []
    before, after = read_frames(film), read_frames(output)
    assert len(after) == 25
    for index in NO_FACE:
        assert np.array_equal(after[index], before[index])
    for index in FACE:
        assert np.abs(after[index].astype(int) - before[index]).mean() > 2
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.slow
def test_identity_model_gives_the_frames_back_as_photo_restoring_does(
    rgb_film, weights_dir, tmp_path
):
    identity = restorer(Identity(512), weights_dir)
    output = tmp_path / "same.mkv"
    restore(rgb_film, output, identity, smooth=False)
    before, after = read_frames(rgb_film), read_frames(output)
    for index, (frame, restored) in enumerate(zip(before, after, strict=True)):
        difference = np.abs(restored.astype(int) - frame)
        assert difference.mean() < 1.0, index
        if index % 6 == 0:  # the film path is the photo path, frame by frame
            photo = identity.restore(frame).image
            assert np.abs(restored.astype(int) - photo).max() <= 2, index


@pytest.mark.slow
def test_phone_clip_window_rotation_and_h264(pictures, gpen, tmp_path):
    source = tmp_path / "phone.mp4"
    make_film(source, pictures, codec="libx264", audio="aac", rotation=90)
    output = tmp_path / "out.mp4"
    window = Window(Fraction(2, 10), Fraction(6, 10))
    _, outcome = restore(source, output, gpen, window=window)
    assert outcome.frames == 10 and outcome.faces == 5  # frames 5–14: 5 with a face
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        first = next(container.decode(video=0))
        assert (first.rotation, first.width, first.height) == (90, 256, 256)
        assert video.average_rate == 25 and video.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 9  # the other nine
    copied = audio_packets(output)
    assert copied and set(copied) <= set(audio_packets(source))


@pytest.mark.slow
def test_stop_closes_a_playable_partial_film(film, gpen, tmp_path):
    output = tmp_path / "out.mkv"
    job = plan_video(film, output, VideoOptions())
    stop = threading.Event()
    outcome = job.run(gpen, stop, on_frame=lambda frame: frame.index >= 5 and stop.set())
    assert outcome.interrupted and not output.exists()
    assert outcome.written == partial_path(output) == tmp_path / "out.partial.mkv"
    frames = read_frames(outcome.written)
    assert 6 <= len(frames) == outcome.frames < 25
    assert not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_segments_resume_and_join_to_the_same_film(film, gpen, tmp_path):
    whole = tmp_path / "whole.mkv"
    restore(film, whole, gpen, smooth=False)
    output = tmp_path / "parts.mkv"
    options = VideoOptions(segment=0.4, smooth=False)
    stop = threading.Event()
    first = plan_video(film, output, options).run(
        gpen, stop, on_frame=lambda frame: frame.time >= Fraction(1, 2) and stop.set()
    )
    assert first.interrupted and not output.exists()
    parts = sorted(p.name for p in segments_dir(output).iterdir())
    assert parts == ["part00000.mkv", "part00001.partial.mkv", "plan.json"]
    second = plan_video(film, output, options).run(gpen)
    assert (second.segments_done, second.segments, second.frames) == (1, 3, 15)
    assert not segments_dir(output).exists()
    for joined, single in zip(read_frames(output), read_frames(whole), strict=True):
        # Equal up to float rounding (faces batched with other faces) through YUV 4:2:0.
        difference = np.abs(joined.astype(int) - single)
        assert difference.max() <= 3 and difference.mean() < 0.05
    assert audio_packets(output) == audio_packets(film)
    with av.open(str(output)) as container:
        assert container.streams.video[0].average_rate == 25


def test_forward_packs_faces_of_consecutive_frames_into_full_batches():
    class Forward:
        batch_size = 4
        sizes: list[int] = []

        def __call__(self, crops):
            self.sizes.append(len(crops))
            return [crop + 1 for crop in crops]

    class Restorer:
        forward = Forward()
        batch_size = forward.batch_size

    class Item:
        def __init__(self, index: int, faces: int):
            self.index, self.model_inputs = index, [np.full(1, index)] * faces

    faces = [1, 2, 0, 3, 0, 0, 1, 1, 2]
    frames = [(Item(i, n), Item(i, n)) for i, n in enumerate(faces)]
    out = list(forward_in_order(Restorer(), frames, hold=20))
    assert [frame.index for frame, _, _ in out] == list(range(len(faces)))
    assert Restorer.forward.sizes == [4, 4, 2]  # ten faces
    assert all(len(restored) == n for (_, _, restored), n in zip(out, faces, strict=True))

    # One face, then a long stretch without: the face goes through before the stretch ends.
    read = []

    def film():
        for index, count in enumerate([1] + [0] * 50):
            read.append(index)
            yield Item(index, count), Item(index, count)

    next(forward_in_order(Restorer(), film(), hold=3))
    assert len(read) == 4 and Restorer.forward.sizes[-1] == 1  # more than 3 waited


def face(x: float) -> Face:
    box = np.array([x, 50.0, x + 100, 170.0])
    points = np.array([[30, 80], [70, 80], [50, 110], [35, 140], [65, 140]], float)
    return Face(box, 0.99, points + [x, 0])


def test_smoother_steadies_a_still_face_and_resets_at_a_cut():
    smoother = LandmarkSmoother(25)
    rng = np.random.default_rng(0)
    still = np.zeros((64, 64, 3), np.uint8)
    raw, smoothed = [], []
    for _ in range(50):
        noisy = face(100)
        noisy.landmarks = noisy.landmarks + rng.normal(0, 1.0, (5, 2))
        smoother.start_frame(still)
        raw.append(noisy.landmarks)
        smoothed.append(smoother.smooth([noisy])[0].landmarks)
    assert np.std(smoothed[10:], axis=0).mean() < 0.5 * np.std(raw[10:], axis=0).mean()
    # A scene cut: the next face is taken as it is.
    smoother.start_frame(np.full((64, 64, 3), 255, np.uint8))
    assert np.array_equal(smoother.smooth([face(100)])[0].landmarks, face(100).landmarks)
    # A face that moves fast is followed closely, not dragged behind.
    for step in range(1, 6):
        smoother.start_frame(np.full((64, 64, 3), 255, np.uint8))
        moved = smoother.smooth([face(100 + 8 * step)])[0]
    assert abs(moved.landmarks[0, 0] - face(140).landmarks[0, 0]) < 8


def test_smoother_forgets_a_lost_face():
    smoother = LandmarkSmoother(25)
    frame = np.zeros((64, 64, 3), np.uint8)
    smoother.start_frame(frame)
    smoother.smooth([face(100)])
    smoother.start_frame(frame)  # no face this frame: smooth() is not called
    smoother.start_frame(frame)
    assert np.array_equal(smoother.smooth([face(104)])[0].landmarks, face(104).landmarks)


runner = CliRunner()


@pytest.mark.slow
def test_cli_restores_and_refuses_bad_input_in_one_line(
    film, tiny_checkpoint, weights_dir, tmp_path
):
    common = ["--model", str(tiny_checkpoint), "--weights-dir", str(weights_dir)]
    common += ["--detector", "retinaface-mobile", "--device", "cpu", "--mask", "rect"]
    output = tmp_path / "out.mkv"
    result = runner.invoke(app, ["video", str(film), "-o", str(output), *common])
    assert result.exit_code == 0, result.output
    assert "25 frames, 20 faces" in result.output and len(read_frames(output)) == 25
    again = runner.invoke(app, ["video", str(film), "-o", str(output), *common])
    assert again.exit_code == 2 and "exists; --overwrite" in again.output

    text = tmp_path / "notes.mp4"
    text.write_text("not a film")
    truncated = tmp_path / "cut.mp4"
    make_film(truncated, [faceless_picture((64, 64))] * 5, codec="libx264", audio=None)
    truncated.write_bytes(truncated.read_bytes()[:300])
    for bad in (text, truncated, tmp_path / "missing.mkv"):
        result = runner.invoke(app, ["video", str(bad), "-o", str(tmp_path / "x.mkv"), *common])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "error:" in result.output
        assert str(bad) in result.output
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(film.read_bytes()[: film.stat().st_size * 6 // 10])
    result = runner.invoke(app, ["video", str(cut), "-o", str(tmp_path / "cut_out.mkv"), *common])
    words = " ".join(result.output.split())  # rich wraps the warning at the test console's width
    # Restored as far as it reads, and exit 1 as --help promises for a film not read to the end.
    assert result.exit_code == 1 and "(truncated or damaged?)" in words, result.output
    assert len(read_frames(tmp_path / "cut_out.mkv")) > 0
    bad_time = runner.invoke(app, ["video", str(film), "--start", "1:xx", *common])
    assert bad_time.exit_code == 2 and "--start" in bad_time.output
    webm = f"-o={tmp_path / 'x.webm'}"
    for choice, words in (("--codec=nope", "no such video encoder"), (webm, "cannot hold")):
        result = runner.invoke(app, ["video", str(film), "--codec=libx264", choice, *common])
        assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "x.mkv").exists()


def test_a_link_or_a_hard_link_at_the_output_name_is_refused(tmp_path):
    from gpen_cli.core.errors import OutputError

    source = tmp_path / "in.mkv"
    make_film(source, [faceless_picture((64, 64))] * 3, audio=None)
    original = source.read_bytes()
    linked = tmp_path / "out.mkv"
    linked.symlink_to(source)
    with pytest.raises(OutputError, match="the output would replace the input"):
        plan_video(source, linked, VideoOptions(overwrite=True))
    elsewhere = tmp_path / "elsewhere.mkv"
    pointer = tmp_path / "pointer.mkv"
    pointer.symlink_to(elsewhere)  # dangling: "exists" says no, a write would follow it
    with pytest.raises(OutputError, match="pointer.mkv: is a symbolic link"):
        plan_video(source, pointer, VideoOptions())
    hard = tmp_path / "hard.mkv"
    hard.hardlink_to(source)
    with pytest.raises(OutputError, match="the output would replace the input"):
        plan_video(source, hard, VideoOptions(overwrite=True))
    assert source.read_bytes() == original and not elsewhere.exists()
