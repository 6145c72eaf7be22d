"""`gpen video` where the encoder, the container or the disk refuse: one line each, saying
what to do, and nothing left in the output folder; what the containers do take is written."""

from __future__ import annotations

import resource
import shlex
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

av = pytest.importorskip("av", minversion="18.1", reason="gpen video needs PyAV 18.1+")

from conftest import process_environment  # noqa: E402
from typer.testing import CliRunner  # noqa: E402
from videoclips import audio_packets, faceless_picture, make_film, read_frames  # noqa: E402

from gpen_cli.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def common(tiny_checkpoint, pipeline_weights_dir) -> list[str]:
    """The CLI's options; without the real detector weights the official faces are replayed
    (these films hold no face either way)."""
    return [
        *("--model", str(tiny_checkpoint), "--weights-dir", str(pipeline_weights_dir)),
        *("--detector", "retinaface-mobile", "--device", "cpu", "--mask", "rect"),
    ]


def film(path: Path, size: tuple[int, int] = (64, 64), count: int = 5, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_film(path, [faceless_picture(size)] * count, **options)
    return path


def video(*args: object):
    return runner.invoke(app, ["video", *(str(arg) for arg in args)])


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def test_odd_sized_film_with_libx264_is_one_line_saying_what_to_do(tmp_path, common):
    source = film(tmp_path / "in" / "odd.mkv", (321, 241), audio=None)
    out = tmp_path / "out"
    result = video(source, "-o", out / "odd.mp4", "--codec", "libx264", *common)
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert "321×241" in line and "even width and height" in line and "ffv1" in line
    assert list(out.iterdir()) == []  # not even a hidden trial file


def test_gif_output_with_the_gif_encoder_is_written(tmp_path, common):
    source = film(tmp_path / "clip.mkv", audio=None)
    output = tmp_path / "clip.gif"
    result = video(source, "-o", output, "--codec", "gif", *common)
    assert result.exit_code == 0, result.output
    assert len(read_frames(output)) == 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.gif", "clip.mkv"]


@pytest.mark.slow
def test_mpeg_ts_takes_h264_and_the_audio_unchanged(tmp_path, common):
    source = film(tmp_path / "clip.mp4", count=25, codec="libx264", audio="aac")
    output = tmp_path / "clip.ts"
    result = video(source, "-o", output, *common)
    assert result.exit_code == 0, result.output
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(read_frames(output)) == 25
    # MPEG-TS frames each AAC packet with a 7-byte ADTS header; the sound itself is unchanged.
    assert [packet[7:] for packet in audio_packets(output)] == audio_packets(source)


def test_a_name_too_long_for_the_stop_file_is_refused_before_any_work(tmp_path, common):
    source = film(tmp_path / "clip.mkv", audio=None)
    fits = tmp_path / ("v" * 241 + ".mkv")  # its hidden temporary name would be 259 bytes
    result = video(source, "-o", fits, *common)
    assert result.exit_code == 0, result.output
    assert len(read_frames(fits)) == 5
    too_long = tmp_path / ("w" * 246 + ".mkv")  # NAME.partial.mkv: 258 bytes
    result = video(source, "-o", too_long, *common)
    assert result.exit_code == 2, result.output
    assert "258 bytes" in one_error_line(result.output)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["clip.mkv", fits.name])


def test_subtitles_left_out_are_said_once(tmp_path, common):
    source = tmp_path / "sub.mkv"
    with av.open(str(source), "w") as container:
        picture = container.add_stream("ffv1", rate=25)
        picture.width = picture.height = 64
        subtitles = container.add_stream("ass")
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(faceless_picture((64, 64)), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(picture.encode(frame))
        packet = av.Packet(b"0,0,Default,,0,0,0,,hello")
        packet.stream, packet.pts, packet.dts, packet.duration = subtitles, 0, 0, 100
        container.mux(packet)
        container.mux(picture.encode(None))
    result = video(source, "-o", tmp_path / "out.mp4", *common)
    assert result.exit_code == 0, result.output
    assert result.output.count("subtitles cannot go into a .mp4 file") == 1, result.output


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child, before it runs: writes past `limit` fail (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="no file size limits here")
def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(tmp_path, common):
    # A process of its own (for its file size limit): `process_environment` gives it the
    # detector this one has.
    source = film(tmp_path / "in" / "big.mkv", (256, 256), count=10, noise=20.0, audio=None)
    assert source.stat().st_size > 200_000
    out = tmp_path / "out"
    out.mkdir()
    environment = process_environment(PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "gpen_cli", "video", str(source), "-o", str(out / "x.mkv")]
    done = subprocess.run(
        [*command, "--quiet", *common],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=_file_size_limit(100_000),
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    line = one_error_line(output)
    assert f"cannot write {out / 'x.mkv'}: File too large; free some space" in line
    assert list(out.iterdir()) == []


def _exif_jpeg(path: Path) -> Path:
    """A JPEG with EXIF: FFmpeg hands its EXIF on as frame side data PyAV has no name for."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0110] = "camera"  # Model
    Image.fromarray(faceless_picture((64, 48))).save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("name", ["photo.jpg", "my photo.png"])
def test_a_photo_is_refused_in_one_line_pointing_to_gpen_restore(tmp_path, common, name):
    photo = tmp_path / name
    if photo.suffix == ".jpg":
        _exif_jpeg(photo)
    else:
        from PIL import Image

        Image.fromarray(faceless_picture((64, 48))).save(photo)
    result = video(photo, *common)
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert f"{photo}: a still image, not a film" in line, line
    assert line.endswith(f"gpen restore {shlex.quote(str(photo))}"), line
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]


def test_a_film_whose_frames_carry_side_data_pyav_cannot_name_is_restored(tmp_path, common):
    # Motion JPEG in Matroska, each frame the EXIF JPEG's own packet: its frames carry EXIF.
    jpeg = _exif_jpeg(tmp_path / "frame.jpg")
    source = tmp_path / "mjpeg.mkv"
    with av.open(str(jpeg)) as still, av.open(str(source), "w") as container:
        packet = next(p for p in still.demux(video=0) if p.size)
        stream = container.add_stream_from_template(still.streams.video[0])
        for index in range(5):
            copy = av.Packet(bytes(packet))
            copy.stream, copy.time_base = stream, Fraction(1, 25)
            copy.pts = copy.dts = index
            copy.duration = 1
            container.mux(copy)
    result = video(source, "-o", tmp_path / "out.mkv", *common)
    assert result.exit_code == 0, result.output
    assert len(read_frames(tmp_path / "out.mkv")) == 5
