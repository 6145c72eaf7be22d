"""The pipeline's choices as types, importable without torch or OpenCV.

The command line builds its options from these, so `gpen --help` and `gpen doctor` work even
where the heavy libraries are broken.
"""

from __future__ import annotations

from enum import Enum


class MaskKind(str, Enum):
    """How restored faces are cut out for pasting."""

    PARSING = "parsing"  # the official face-parsing mask
    RECT = "rect"  # the official feathered square
