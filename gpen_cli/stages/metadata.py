"""A photo's ICC profile and EXIF, read from its header and put back into the encoded output.

OpenCV encodes the pixels and writes no metadata, so a restored photo would lose its colour
profile (its colours then shift in any viewer that manages colour) and its EXIF (camera,
date, place). Both are inserted into the bytes OpenCV produced, as the container's own
segments or chunks: the encoded pixel data is not touched, so the pixels are exactly those
written without metadata.

The ICC profile is kept as it is. The EXIF is kept with its orientation tag set to 1, since
the pixels are stored upright; it is kept byte for byte otherwise (maker notes keep their
offsets). JPEG, PNG and WebP carry both; TIFF carries the ICC profile (EXIF lives there in
an IFD whose offsets would have to be rebuilt, so it is left out and the report says so);
BMP carries neither.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

logger = logging.getLogger(__name__)

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_ICC_TAG = 34675
_JPEG_SEGMENT_MAX = 65533  # payload bytes one JPEG marker segment holds
_ICC_CHUNK = 65519  # ICC bytes per APP2 segment, after "ICC_PROFILE\0", number and count


@dataclass(frozen=True)
class Metadata:
    """What of a photo's metadata its output keeps."""

    icc_profile: bytes | None = None
    exif: bytes | None = None  # TIFF-structured EXIF, no "Exif\0\0" header, orientation 1

    def __bool__(self) -> bool:
        return bool(self.icc_profile or self.exif)


def read_metadata(header: Image.Image) -> Metadata:
    """The ICC profile and the EXIF (made upright) of a photo opened lazily by Pillow."""
    icc = header.info.get("icc_profile") or None
    exif = None
    raw = header.info.get("exif") if header.format != "TIFF" else None
    if isinstance(raw, bytes) and raw:
        exif = upright_exif(raw[len(_EXIF_HEADER) :] if raw.startswith(_EXIF_HEADER) else raw)
    return Metadata(icc if isinstance(icc, bytes) else None, exif)


def upright_exif(tiff: bytes) -> bytes | None:
    """`tiff` (EXIF's TIFF structure) with its orientation set to 1; None if unreadable."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        logger.debug("dropping an EXIF block that is not TIFF-structured")
        return None
    data = bytearray(tiff)
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for index in range(count):
            entry = offset + 2 + 12 * index
            tag, kind, _ = struct.unpack_from(order + "HHI", data, entry)
            if tag == _ORIENTATION and kind == 3:  # SHORT, stored in the entry itself
                struct.pack_into(order + "H", data, entry + 8, 1)
    except struct.error:
        logger.debug("dropping an EXIF block whose first IFD is cut short")
        return None
    return bytes(data)


def dropped_note(metadata: Metadata, extension: str) -> str | None:
    """What the report says of metadata the output format cannot carry, None if all kept."""
    lost = []
    if metadata.icc_profile and extension == ".bmp":
        lost.append("ICC profile")
    if metadata.exif and extension in (".bmp", ".tif", ".tiff"):
        lost.append("EXIF")
    if not lost:
        return None
    kind = extension.lstrip(".").upper()
    return f"{' and '.join(lost)} not kept: this {kind} output cannot carry them here"


def embed(
    encoded: memoryview, extension: str, metadata: Metadata, width: int, height: int
) -> memoryview | bytes:
    """`encoded` (OpenCV's output for `extension`) with `metadata` inserted, pixels as they are."""
    if not metadata:
        return encoded
    encoded = memoryview(encoded).cast("B")
    if extension in (".jpg", ".jpeg"):
        return _embed_jpeg(encoded, metadata)
    if extension == ".png":
        return _embed_png(encoded, metadata)
    if extension == ".webp":
        return _embed_webp(encoded, metadata, width, height)
    if extension in (".tif", ".tiff") and metadata.icc_profile:
        return _embed_tiff_icc(encoded, metadata.icc_profile)
    return encoded


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _embed_jpeg(encoded: memoryview, metadata: Metadata) -> bytes:
    """APP1 (EXIF) and APP2 (ICC, in numbered pieces) after SOI and OpenCV's JFIF APP0."""
    position = 2
    if bytes(encoded[2:4]) == b"\xff\xe0":
        position = 4 + struct.unpack(">H", encoded[4:6])[0]
    segments = b""
    if metadata.exif and len(_EXIF_HEADER) + len(metadata.exif) <= _JPEG_SEGMENT_MAX:
        segments += _jpeg_segment(0xE1, _EXIF_HEADER + metadata.exif)
    if metadata.icc_profile:
        icc = metadata.icc_profile
        pieces = [icc[i : i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
        for number, piece in enumerate(pieces[:255], start=1):
            header = b"ICC_PROFILE\x00" + bytes([number, len(pieces)])
            segments += _jpeg_segment(0xE2, header + piece)
    return b"".join((encoded[:position], segments, encoded[position:]))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _embed_png(encoded: memoryview, metadata: Metadata) -> bytes:
    """iCCP and eXIf chunks right after IHDR, before the image data."""
    position = 8 + 12 + struct.unpack(">I", encoded[8:12])[0]  # signature, then IHDR
    chunks = b""
    if metadata.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(metadata.icc_profile))
    if metadata.exif:
        chunks += _png_chunk(b"eXIf", metadata.exif)
    return b"".join((encoded[:position], chunks, encoded[position:]))


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def _embed_webp(view: memoryview, metadata: Metadata, width: int, height: int) -> bytes:
    """The extended layout: VP8X with the ICC and EXIF flags, ICCP first, EXIF last."""
    encoded = bytes(view)
    chunks = []
    position = 12
    while position + 8 <= len(encoded):
        kind = encoded[position : position + 4]
        (size,) = struct.unpack("<I", encoded[position + 4 : position + 8])
        chunks.append((kind, encoded[position + 8 : position + 8 + size]))
        position += 8 + size + size % 2
    flags = 0
    rest = []
    for kind, data in chunks:
        if kind == b"VP8X":
            flags = data[0]
        elif kind == b"ALPH" or (kind == b"VP8L" and len(data) > 4 and data[4] & 0x10):
            flags |= 0x10
            rest.append((kind, data))
        else:
            rest.append((kind, data))
    flags |= (0x20 if metadata.icc_profile else 0) | (0x08 if metadata.exif else 0)
    size = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
    body = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + size)
    if metadata.icc_profile:
        body += _riff_chunk(b"ICCP", metadata.icc_profile)
    body += b"".join(_riff_chunk(kind, data) for kind, data in rest)
    if metadata.exif:
        body += _riff_chunk(b"EXIF", metadata.exif)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _embed_tiff_icc(view: memoryview, icc: bytes) -> bytes | memoryview:
    """The first IFD rewritten at the end of the file with the ICC tag added; the rest as is."""
    encoded = bytes(view)
    order = {b"II": "<", b"MM": ">"}.get(encoded[:2])
    if order is None or encoded[2:4] not in (b"*\x00", b"\x00*"):
        return view  # BigTIFF or unknown: left without the profile
    (offset,) = struct.unpack_from(order + "I", encoded, 4)
    (count,) = struct.unpack_from(order + "H", encoded, offset)
    entries = [encoded[offset + 2 + 12 * i : offset + 14 + 12 * i] for i in range(count)]
    (next_ifd,) = struct.unpack_from(order + "I", encoded, offset + 2 + 12 * count)
    out = bytearray(encoded)
    if len(out) % 2:
        out += b"\x00"
    icc_offset = len(out)
    out += icc + (b"\x00" if len(icc) % 2 else b"")
    entry = struct.pack(order + "HHII", _ICC_TAG, 7, len(icc), icc_offset)
    tags = [e for e in entries if struct.unpack_from(order + "H", e)[0] != _ICC_TAG] + [entry]
    tags.sort(key=lambda e: struct.unpack_from(order + "H", e)[0])
    ifd_offset = len(out)
    out += struct.pack(order + "H", len(tags)) + b"".join(tags)
    out += struct.pack(order + "I", next_ifd)
    struct.pack_into(order + "I", out, 4, ifd_offset)
    return bytes(out)
