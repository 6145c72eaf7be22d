"""Whether an image file's data ends before the format says it does, read before decoding.

libjpeg decodes a JPEG cut short without failing: it fills the missing rows with flat grey
and prints "Premature end of JPEG file" on stderr, so a third of a photo would come back
"restored". libpng fails on a cut PNG but prints its own error first. Reading the file's
structure here (markers and chunk lengths, no pixels) finds both before any decoder runs,
so the photo fails with one line of ours and no decoder message reaches the terminal.
"""

from __future__ import annotations

import mmap
import struct
from typing import BinaryIO

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers that stand alone, without a length: TEM and the restart markers RST0-7.
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}


def data_ends_early(stream: BinaryIO) -> str | None:
    """What is missing when the open file's data stops before its format's end, else None.

    Only JPEG and PNG are read; other formats, and files whose structure is not what these
    checks expect, are left to the decoder (None).
    """
    stream.seek(0)
    head = stream.read(8)
    if head.startswith(_JPEG_START):
        check = _jpeg_ends_early
    elif head == _PNG_SIGNATURE:
        check = _png_ends_early
    else:
        return None
    try:
        data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # not a mappable file: the decoder decides
        return None
    with data:
        return check(data)


def _jpeg_ends_early(data: mmap.mmap) -> str | None:
    """Walk the segments up to the first scan; the scan data must reach an end marker.

    Inside entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so the
    first FF D9 after the start of scan is the end of the image. Segments before the scan are
    skipped by their lengths, which also steps over an EXIF thumbnail's own markers.
    """
    size, position = len(data), 2
    while position + 4 <= size:
        if data[position] != 0xFF:
            return None  # not the layout expected: the decoder decides
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
        elif marker in _STANDALONE_MARKERS:
            position += 2
        elif marker == 0xD9:
            return None
        elif marker == 0xDA:
            if data.find(_JPEG_END, position) < 0:
                return "the JPEG data ends before its end-of-image marker (truncated file?)"
            return None
        else:
            (length,) = struct.unpack(">H", data[position + 2 : position + 4])
            position += 2 + length
    return "the JPEG data ends before its first scan (truncated file?)"


def _png_ends_early(data: mmap.mmap) -> str | None:
    """Walk the chunks by their lengths; the file must reach its IEND chunk."""
    size, position = len(data), len(_PNG_SIGNATURE)
    while position + 8 <= size:
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IEND":
            return None
        position += 12 + length  # length, type, data, CRC
    return "the PNG data ends before its IEND chunk (truncated file?)"
