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


class DetectorName(str, Enum):
    """The face detectors; `retinaface` is the ResNet-50 one, as in the official code."""

    RETINAFACE = "retinaface"
    RETINAFACE_RESNET50 = "retinaface-resnet50"
    RETINAFACE_MOBILE = "retinaface-mobile"
    YUNET = "yunet"


class LandmarkSource(str, Enum):
    """Where the 5 alignment points come from."""

    DETECTOR = "detector"  # the detector's own 5 points (the official way)
    FAN = "fan"  # face-alignment's 68 points reduced to 5
