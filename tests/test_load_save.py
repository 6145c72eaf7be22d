"""Loading and saving real image files: round trips, EXIF orientation, bad inputs, safe writes."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from gpen_cli.core.errors import InputError, OutputError
from gpen_cli.io import atomic
from gpen_cli.io.atomic import PARTIAL_MARKER, is_partial_file
from gpen_cli.stages import load as load_module
from gpen_cli.stages import save as save_module
from gpen_cli.stages.load import LoadedImage, load_image, to_uint8
from gpen_cli.stages.save import output_path_for, save_image

RNG = np.random.default_rng(7)


def _write(path: Path, image: np.ndarray) -> Path:
    """Encode with OpenCV by extension, written with tofile so unicode names work."""
    ok, buffer = cv2.imencode(path.suffix, image)
    assert ok
    buffer.tofile(str(path))
    return path


def _read_unchanged(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _random(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth BGR content that JPEG keeps within a few levels."""
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    return np.round(np.stack([x, y, (x + y) / 2], axis=-1) * 255).astype(np.uint8)


def _reload(loaded: LoadedImage, tmp_path: Path, name: str) -> np.ndarray:
    """Save the loaded image back through to_output and read the file as stored."""
    saved = save_image(tmp_path / name, loaded.to_output(loaded.pixels))
    return _read_unchanged(saved)


# --------------------------------------------------------------------------- round trips


def test_8bit_colour_png_round_trip_is_exact(tmp_path):
    original = _random((24, 32, 3))
    loaded = load_image(_write(tmp_path / "in.png", original))

    assert loaded.pixels.dtype == np.uint8 and loaded.alpha is None
    assert not loaded.was_gray and loaded.source_format == "png"
    np.testing.assert_array_equal(loaded.pixels, original)
    assert loaded.bgr8 is loaded.pixels
    np.testing.assert_array_equal(_reload(loaded, tmp_path, "out.png"), original)


def test_jpeg_round_trip_stays_close(tmp_path):
    original = _gradient()
    loaded = load_image(_write(tmp_path / "in.JPEG", original))

    assert loaded.source_format == "jpg"
    assert loaded.pixels.shape == original.shape and loaded.pixels.dtype == np.uint8
    assert np.abs(loaded.pixels.astype(int) - original).mean() < 2
    again = _reload(loaded, tmp_path, "out.jpg")
    assert np.abs(again.astype(int) - original).mean() < 3


def test_16bit_png_values_survive_load_output_save_load(tmp_path):
    original = _random((20, 30, 3), np.uint16)
    assert (original > 255).mean() > 0.9
    loaded = load_image(_write(tmp_path / "in16.png", original))

    assert loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels, original)
    np.testing.assert_array_equal(loaded.bgr8, np.round(original / 257).astype(np.uint8))
    stored = _reload(loaded, tmp_path, "out16.png")
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, original)
    np.testing.assert_array_equal(load_image(tmp_path / "out16.png").pixels, original)


def test_restored_8bit_pixels_go_back_to_16bit():
    loaded = LoadedImage(Path("x.png"), np.zeros((4, 4, 3), np.uint16), None, False, "png")
    restored = np.full((4, 4, 3), 255, np.uint8)
    out = loaded.to_output(restored)
    assert out.dtype == np.uint16 and (out == 65535).all()


def test_output_kept_at_another_size_gets_a_resized_alpha():
    alpha = np.zeros((20, 30), np.uint8)
    alpha[:, 15:] = 255
    loaded = LoadedImage(Path("x.png"), np.zeros((20, 30, 3), np.uint8), alpha, False, "png")
    out = loaded.to_output(np.zeros((40, 60, 3), np.uint8))
    assert out.shape == (40, 60, 4)
    assert (out[:, :22, 3] == 0).all() and (out[:, 38:, 3] == 255).all()


def test_to_uint8_rounds_every_16bit_value_to_nearest():
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8(values), np.round(values / 257).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_stays_grayscale(tmp_path, dtype):
    original = _random((20, 24), dtype)
    loaded = load_image(_write(tmp_path / "grey.png", original))

    assert loaded.was_gray and loaded.pixels.dtype == dtype
    assert loaded.pixels.shape == (20, 24, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded.pixels[:, :, channel], original)
    stored = _reload(loaded, tmp_path, "grey_out.png")
    assert stored.shape == (20, 24) and stored.dtype == dtype
    np.testing.assert_array_equal(stored, original)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgba_alpha_is_preserved_bit_exactly_through_png(tmp_path, dtype):
    original = _random((16, 20, 4), dtype)
    loaded = load_image(_write(tmp_path / "rgba.png", original))

    np.testing.assert_array_equal(loaded.alpha, original[:, :, 3])
    np.testing.assert_array_equal(loaded.pixels, original[:, :, :3])
    stored = _reload(loaded, tmp_path, "rgba_out.png")
    np.testing.assert_array_equal(stored, original)


def test_grey_with_alpha_comes_back_as_grey_bgra(tmp_path):
    grey_alpha = _random((12, 14, 2))
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")

    assert loaded.was_gray
    np.testing.assert_array_equal(loaded.alpha, grey_alpha[:, :, 1])
    out = loaded.to_output(loaded.pixels)
    assert out.shape == (12, 14, 4)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey_alpha[:, :, 0])
    np.testing.assert_array_equal(out[:, :, 3], grey_alpha[:, :, 1])


def test_palette_png_with_transparency_gives_colour_and_alpha(tmp_path):
    palette_image = Image.fromarray(_random((10, 12, 3))).quantize(8)
    palette_image.save(tmp_path / "pal.png", transparency=0)
    expected = np.asarray(Image.open(tmp_path / "pal.png").convert("RGBA"))
    assert (expected[:, :, 3] == 0).any() and (expected[:, :, 3] == 255).any()
    loaded = load_image(tmp_path / "pal.png")

    np.testing.assert_array_equal(loaded.pixels, expected[:, :, 2::-1])
    np.testing.assert_array_equal(loaded.alpha, expected[:, :, 3])


def test_gif_is_decoded_by_the_pillow_fallback(tmp_path):
    colours = Image.fromarray(_random((10, 12, 3))).quantize(16)
    colours.save(tmp_path / "anim.gif")
    assert cv2.imdecode(np.fromfile(tmp_path / "anim.gif", np.uint8), cv2.IMREAD_UNCHANGED) is None
    loaded = load_image(tmp_path / "anim.gif")

    np.testing.assert_array_equal(loaded.pixels, np.asarray(colours.convert("RGB"))[:, :, ::-1])
    assert loaded.source_format == "gif"
    assert output_path_for(tmp_path / "anim.gif", None).name == "anim_gpen.png"


def test_float_tiff_becomes_16bit_scaled_from_unit_range(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0, 1.5, -1.0, np.nan, 0.75]] * 8, np.float32)
    Image.fromarray(values, "F").save(tmp_path / "float.tif")
    loaded = load_image(tmp_path / "float.tif")

    assert loaded.pixels.dtype == np.uint16 and loaded.was_gray
    expected = [0, 16384, 32768, 65535, 65535, 0, 0, 49151]
    np.testing.assert_array_equal(loaded.pixels[0, :, 0], expected)


# --------------------------------------------------------------------------- orientation


def _marked_image() -> np.ndarray:
    """40 wide × 20 high, dark, with a white block in the top-left corner."""
    image = np.full((20, 40, 3), 30, np.uint8)
    image[:6, :6] = 255
    return image


@pytest.mark.parametrize(
    ("extension", "pillow_format", "options"),
    [
        ("jpg", "JPEG", {"quality": 95}),
        ("png", "PNG", {}),
        ("webp", "WEBP", {"lossless": True}),
        ("tif", "TIFF", {}),
    ],
)
def test_exif_orientation_6_is_rotated_upright(tmp_path, extension, pillow_format, options):
    image = Image.fromarray(_marked_image())
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to display
    path = tmp_path / f"sideways.{extension}"
    image.save(path, pillow_format, exif=exif, **options)

    loaded = load_image(path)
    assert loaded.pixels.shape == (40, 20, 3)
    assert loaded.pixels[:6, -6:].mean() > 240  # the mark is now top-right
    assert loaded.pixels[-6:, :6].mean() < 60 and loaded.pixels[:6, :6].mean() < 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    original = _random((9, 14, 4))
    image = Image.fromarray(original, "RGBA")
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)

    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    loaded = load_image(tmp_path / "o.png", min_size=1)
    np.testing.assert_array_equal(loaded.pixels, upright[:, :, 2::-1])
    np.testing.assert_array_equal(loaded.alpha, upright[:, :, 3])


# --------------------------------------------------------------------------- bad inputs


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _png_with_header(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims width×height RGB, with a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(64)))
        + _png_chunk(b"IEND", b"")
    )


def _png_bytes(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


BAD_INPUTS = {
    "empty": (b"", "empty file"),
    "text": (b"this is a shopping list, not a photo\n" * 10, "not an image or corrupt"),
    "truncated": (_png_bytes(_random((64, 64, 3)))[:100], "truncated file?"),
    "one_pixel": (_png_bytes(np.zeros((1, 1, 3), np.uint8)), "1×1 px is too small to hold a face"),
    "huge_header": (_png_with_header(100_000, 100_000), "refusing to decode"),
    "header_only": (_png_with_header(100_000, 100_000)[:33], "refusing to decode"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_file_is_refused_by_name_and_left_unchanged(tmp_path, monkeypatch, case):
    content, reason = BAD_INPUTS[case]
    path = tmp_path / f"bad {case}.jpg" if case == "text" else tmp_path / f"bad {case}.png"
    path.write_bytes(content)
    before = (_digest(path), path.stat().st_mtime_ns)
    if case in ("huge_header", "one_pixel"):  # refused from the header alone
        monkeypatch.setattr(cv2, "imdecode", _must_not_decode)

    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert path.name in message and reason in message and "\n" not in message
    assert (_digest(path), path.stat().st_mtime_ns) == before


def _must_not_decode(*args, **kwargs):
    raise AssertionError("pixels were decoded although the header already refused the file")


def test_decoder_exception_becomes_input_error(tmp_path, monkeypatch):
    def exploding_decoder(*args, **kwargs):
        raise cv2.error("decoder exploded")

    monkeypatch.setattr(cv2, "imdecode", exploding_decoder)
    path = tmp_path / "odd.hdr"
    path.write_bytes(b"#?RADIANCE\n" + bytes(64))
    with pytest.raises(InputError, match=r"cannot decode .*odd\.hdr: not an image or corrupt"):
        load_image(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.jpg: no such file"):
        load_image(tmp_path / "nowhere.jpg")


def test_directory_is_refused(tmp_path):
    (tmp_path / "album.jpg").mkdir()
    with pytest.raises(InputError, match=r"album\.jpg: is a folder, not an image file"):
        load_image(tmp_path / "album.jpg")


def _png_bomb_behind_text_chunk(width: int, height: int) -> bytes:
    """A PNG claiming width×height whose zTXt chunk, before IDAT, inflates to 4 MB: more than
    Pillow reads, so Pillow gives up on the header (the case of issue 10)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"Comment\x00\x00" + zlib.compress(bytes(4_000_000), 9)
    rows = zlib.compress(bytes(1 + 3 * width) * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"zTXt", text)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def test_png_bomb_behind_an_ancillary_chunk_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bomb_behind_text_chunk(30_000, 30_000))
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):  # the premise: Pillow gives up
        Image.open(path)
    monkeypatch.setattr(cv2, "imdecode", _must_not_decode)
    with pytest.raises(InputError, match=r"bomb\.png: header claims 30000×30000 px \(900 MP\)"):
        load_image(path)


def test_decoder_is_bounded_where_no_header_can_be_read_here(tmp_path):
    # Radiance HDR: Pillow has no reader for it, so only OpenCV's own bound stands.
    path = tmp_path / "huge.hdr"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + bytes(64))
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"huge\.hdr: header claims more than the 150 MP limit"):
        load_image(path)
    assert time.perf_counter() - started < 1.0


def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.png", _random((64, 64, 3)))
    monkeypatch.setattr(cv2, "imdecode", _must_not_decode)
    with pytest.raises(InputError, match=r"big\.png: header claims 64×64 px .* limit"):
        load_image(path, max_pixels=1000)


def test_small_but_sufficient_image_loads(tmp_path):
    path = _write(tmp_path / "tiny.png", _random((8, 8, 3)))
    assert load_image(path).pixels.shape == (8, 8, 3)
    with pytest.raises(InputError, match="8×8 px is too small"):
        load_image(path, min_size=9)


def test_unicode_and_spaces_in_names_load_and_save(tmp_path):
    folder = tmp_path / "Fotos de família – été 1927"
    folder.mkdir()
    original = _random((16, 16, 3))
    source = _write(folder / "vieux portrait 写真 ñ.png", original)

    loaded = load_image(source)
    np.testing.assert_array_equal(loaded.pixels, original)
    target = output_path_for(source, None)
    assert target.name == "vieux portrait 写真 ñ_gpen.png"
    save_image(target, loaded.to_output(loaded.pixels), protected=[source])
    np.testing.assert_array_equal(load_image(target).pixels, original)


# --------------------------------------------------------------------------- output paths


def test_output_path_beside_the_input_with_suffix(tmp_path):
    assert output_path_for(tmp_path / "photo.jpg", None) == tmp_path / "photo_gpen.jpg"
    assert output_path_for(tmp_path / "scan.TIF", None) == tmp_path / "scan_gpen.TIF"
    assert output_path_for(tmp_path / "photo.jpg", None, ext="png") == tmp_path / "photo_gpen.png"
    assert output_path_for(tmp_path / "pic.heic", None) == tmp_path / "pic_gpen.png"
    assert output_path_for(tmp_path / "a.png", None, ext="jpg", suffix="_x") == tmp_path / "a_x.jpg"


def test_output_path_inside_a_folder(tmp_path):
    existing = tmp_path / "restored"
    existing.mkdir()
    assert output_path_for(Path("in/photo.jpg"), existing) == existing / "photo.jpg"
    assert output_path_for(Path("photo.jpg"), "new/", ext="png") == Path("new/photo.png")
    assert output_path_for(Path("photo.jpg"), Path("new"), is_dir_output=True) == Path(
        "new/photo.jpg"
    )


def test_output_path_to_an_explicit_file(tmp_path):
    assert output_path_for(Path("photo.jpg"), tmp_path / "x.webp") == tmp_path / "x.webp"
    with pytest.raises(ValueError, match="ext"):
        output_path_for(Path("photo.jpg"), None, ext="gif")


# --------------------------------------------------------------------------- saving


def test_save_refuses_an_existing_file_without_overwrite(tmp_path):
    target = _write(tmp_path / "out.png", _random((8, 8, 3)))
    before = _digest(target)
    with pytest.raises(OutputError, match=r"out\.png exists; pass overwrite to replace it"):
        save_image(target, _random((8, 8, 3)))
    assert _digest(target) == before


def test_save_overwrites_when_asked(tmp_path):
    target = _write(tmp_path / "out.png", np.zeros((8, 8, 3), np.uint8))
    replacement = _random((8, 8, 3))
    assert save_image(target, replacement, overwrite=True) == target
    np.testing.assert_array_equal(_read_unchanged(target), replacement)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_never_writes_over_an_input_even_with_overwrite(tmp_path):
    source = _write(tmp_path / "input.png", _random((8, 8, 3)))
    before = _digest(source)
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.png"
    link.symlink_to(source)
    for spelling in (source, tmp_path / "sub" / ".." / "input.png", link):
        with pytest.raises(OutputError, match=r"refusing to write over input file .*input\.png"):
            save_image(spelling, _random((8, 8, 3)), overwrite=True, protected=[source])
    assert _digest(source) == before


def test_save_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.png"
    save_image(target, _random((8, 8, 3)))
    assert target.is_file()


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
def test_saved_file_gets_ordinary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        target = save_image(tmp_path / "out.jpg", _random((8, 8, 3)))
    finally:
        os.umask(previous)
    assert target.stat().st_mode & 0o777 == 0o644


def _fail_encode(*args, **kwargs):
    return False, None


def _raise_cv2_error(*args, **kwargs):
    raise cv2.error("encoder exploded")


@pytest.mark.parametrize("failure", [_fail_encode, _raise_cv2_error])
def test_failed_encode_leaves_nothing_behind(tmp_path, monkeypatch, failure):
    monkeypatch.setattr(cv2, "imencode", failure)
    with pytest.raises(OutputError, match=r"cannot encode .*out\.png"):
        save_image(tmp_path / "out.png", _random((8, 8, 3)))
    assert list(tmp_path.iterdir()) == []


def test_unsupported_extension_is_refused_before_writing(tmp_path):
    with pytest.raises(OutputError, match=r"out\.gif: unsupported extension \.gif"):
        save_image(tmp_path / "out.gif", _random((8, 8, 3)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("overwrite", "publish"), [(True, "replace"), (False, "link")])
def test_failed_rename_removes_the_partial_file(tmp_path, monkeypatch, overwrite, publish):
    seen = []

    def failing_publish(source, destination):
        seen.append(Path(source))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, publish, failing_publish)
    with pytest.raises(OutputError, match=r"cannot write .*out\.png: No space left on device"):
        save_image(tmp_path / "out.png", _random((8, 8, 3)), overwrite=overwrite)

    partial = seen[0]
    assert partial.parent == tmp_path and partial.name.startswith(".")
    assert PARTIAL_MARKER in partial.name and is_partial_file(partial)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_write_removes_the_partial_file(tmp_path, monkeypatch):
    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(save_module.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.png", _random((8, 8, 3)))
    assert list(tmp_path.iterdir()) == []


def test_is_partial_file_recognises_only_leftovers():
    assert is_partial_file(Path("/x/.photo_gpen.jpg.1a2b3c4d.partial"))
    assert not is_partial_file(Path("/x/photo_gpen.jpg"))
    assert not is_partial_file(Path("/x/.hidden.jpg"))
    assert not is_partial_file(Path("/x/notes.partial"))


def test_uint16_to_jpeg_scales_to_8_bit_instead_of_saturating(tmp_path):
    flat = np.full((16, 16, 3), 40000, np.uint16)  # 40000 / 257 = 155.6
    stored = _read_unchanged(save_image(tmp_path / "out.jpg", flat))
    assert stored.dtype == np.uint8
    assert np.abs(stored.astype(int) - 156).max() <= 1


@pytest.mark.parametrize(
    ("extension", "dtype", "channels"),
    [
        (".png", np.uint16, 4),
        (".tif", np.uint16, 4),
        (".webp", np.uint8, 4),
        (".jpg", np.uint8, 3),
        (".bmp", np.uint8, 3),
    ],
)
def test_bit_depth_and_alpha_policy_per_format(tmp_path, extension, dtype, channels):
    bgra16 = np.zeros((16, 16, 4), np.uint16)
    bgra16[..., :3] = 30000
    bgra16[..., 3] = np.arange(16, dtype=np.uint16) * 4096  # varied, so webp keeps it
    stored = _read_unchanged(save_image(tmp_path / f"out{extension}", bgra16))
    assert stored.dtype == dtype
    assert stored.shape == (16, 16, channels)


def _recording(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(args[0])
        return function(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("name", ["once.png", "once.gif"])
def test_loader_opens_the_file_once(tmp_path, monkeypatch, name):
    """Header, EXIF and pixels (OpenCV or the Pillow fallback) all come from one read."""
    path = tmp_path / name
    Image.fromarray(_random((10, 12, 3))).quantize(16).save(path)
    opened_paths, pillow_sources = [], []
    monkeypatch.setattr(Path, "open", _recording(Path.open, opened_paths))
    monkeypatch.setattr(load_module.Image, "open", _recording(Image.open, pillow_sources))

    load_image(path)
    assert opened_paths == [path]
    assert pillow_sources and not any(isinstance(s, (str, os.PathLike)) for s in pillow_sources)


def test_a_file_written_meanwhile_by_another_process_is_never_replaced(tmp_path, monkeypatch):
    # Two runs both saw "no output yet"; the other one published first.
    target = tmp_path / "out.png"
    monkeypatch.setattr(save_module, "_refuse_unsafe_target", lambda *args: None)
    target.write_bytes(b"the other run's result")
    with pytest.raises(
        OutputError, match=r"out\.png exists \(written meanwhile by another process\)"
    ):
        save_image(target, _random((8, 8, 3)))
    assert target.read_bytes() == b"the other run's result"
    assert [path.name for path in tmp_path.iterdir()] == ["out.png"]


def test_without_hard_links_the_target_is_still_not_replaced(tmp_path, monkeypatch):
    def no_links(source, destination):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    save_image(tmp_path / "new.png", _random((8, 8, 3)))  # published by rename instead
    assert _read_unchanged(tmp_path / "new.png").shape == (8, 8, 3)
    existing = tmp_path / "old.png"
    existing.write_bytes(b"keep me")
    monkeypatch.setattr(save_module, "_refuse_unsafe_target", lambda *args: None)
    with pytest.raises(OutputError, match="exists"):
        save_image(existing, _random((8, 8, 3)))
    assert existing.read_bytes() == b"keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["new.png", "old.png"]


def test_stale_partials_of_a_target_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "photo_gpen.jpg"
    mine = [
        tmp_path / ".photo_gpen.jpg.0badf00d.partial",
        tmp_path / ".photo_gpen.jpg.12345678.partial",
    ]
    others = [
        tmp_path / ".other.jpg.0badf00d.partial",
        tmp_path / ".photo_gpen.jpg.notmine.partial",
        tmp_path / "photo_gpen.jpg.0badf00d.partial",
        tmp_path / "photo.jpg",
    ]
    for path in mine + others:
        path.write_bytes(b"x")
    assert sorted(atomic.remove_partials_of(target)) == sorted(mine)
    assert sorted(tmp_path.iterdir()) == sorted(others)


def _jpeg_with_thumbnail(image: np.ndarray, **save_options) -> bytes:
    """A JPEG whose EXIF block holds a complete thumbnail JPEG (its own end marker)."""
    from PIL import Image as PILImage

    thumbnail = io.BytesIO()
    PILImage.fromarray(image[::4, ::4, ::-1]).save(thumbnail, "JPEG")
    exif = PILImage.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    PILImage.fromarray(image[:, :, ::-1]).save(
        buffer, "JPEG", exif=exif.tobytes() + thumbnail.getvalue(), **save_options
    )
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_cut_short_fails_without_a_decoder_message(tmp_path, capfd, progressive):
    image = _random((240, 320, 3))
    whole = _jpeg_with_thumbnail(image, progressive=progressive, quality=90)
    assert whole.count(b"\xff\xd9") >= 2  # the thumbnail's end marker comes first
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert str(caught.value) == (
        f"{path}: the JPEG data ends before its end-of-image marker (truncated file?); not restored"
    )
    assert "JPEG" not in capfd.readouterr().err  # libjpeg's "Premature end" never printed
    complete = tmp_path / "whole.jpg"
    complete.write_bytes(whole + b"trailing bytes after the end are harmless")
    assert load_image(complete).pixels.shape == (240, 320, 3)


def test_png_cut_short_fails_without_a_decoder_message(tmp_path, capfd):
    data = _png_bytes(_random((64, 64, 3)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) - 12])  # everything but the IEND chunk
    with pytest.raises(InputError, match="ends before its IEND chunk"):
        load_image(path)
    assert "libpng" not in capfd.readouterr().err


def _photo_with_metadata(path: Path, alpha: bool = False) -> tuple[bytes, np.ndarray]:
    """A photo stored sideways (EXIF orientation 6) with an sRGB profile and a camera name."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (24, 40, 4 if alpha else 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    image = Image.fromarray(pixels)
    image.save(path, icc_profile=icc, exif=exif, quality=95)
    return icc, pixels


@pytest.mark.parametrize(
    ("source", "output", "alpha"),
    [("in.jpg", "out.jpg", False), ("in.png", "out.png", False), ("in.png", "out.webp", False),
     ("in.png", "out.webp", True), ("in.webp", "out.png", False), ("in.jpg", "out.tif", False)],
)  # fmt: skip
def test_icc_profile_and_upright_exif_are_kept_and_pixels_unchanged(
    tmp_path, source, output, alpha
):
    icc, _ = _photo_with_metadata(tmp_path / source, alpha)
    loaded = load_image(tmp_path / source)
    assert loaded.pixels.shape[:2] == (40, 24)  # turned upright
    image = loaded.to_output(loaded.pixels)
    kept = save_image(tmp_path / output, image, metadata=loaded.metadata)
    plain = save_image(tmp_path / f"plain{Path(output).suffix}", image)
    flags = cv2.IMREAD_UNCHANGED
    assert np.array_equal(cv2.imread(str(kept), flags), cv2.imread(str(plain), flags))
    with Image.open(kept) as written:
        written.load()
        assert written.info.get("icc_profile") == icc
        if kept.suffix != ".tif":
            exif = written.getexif()
            assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"


def test_the_report_says_what_metadata_a_format_cannot_carry(tmp_path):
    from gpen_cli.batch.steps import _note

    _photo_with_metadata(tmp_path / "in.jpg")
    loaded = load_image(tmp_path / "in.jpg")
    assert _note(loaded, tmp_path / "out.png") is None
    assert "EXIF not kept" in _note(loaded, tmp_path / "out.tif")
    assert "ICC profile and EXIF not kept" in _note(loaded, tmp_path / "out.bmp")
