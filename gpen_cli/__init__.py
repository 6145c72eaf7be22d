"""gpen-cli: face restoration with GPEN (Yang et al., CVPR 2021)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.defaults import DEFAULT_MAX_PIXELS
from gpen_cli.core.version import __version__

# OpenCV refuses to decode images above this many pixels before allocating them. It reads the
# variable once, when cv2 is imported, so it is set here, ahead of any module that imports cv2
# (a value the user set wins).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))

if TYPE_CHECKING:
    from gpen_cli.pipeline.restorer import FaceRestorer

__all__ = ["FaceRestorer", "RestoreConfig", "__version__"]


def __getattr__(name: str) -> Any:
    # Importing torch and OpenCV takes seconds: only pay for it when the API is used.
    if name == "FaceRestorer":
        from gpen_cli.pipeline.restorer import FaceRestorer

        return FaceRestorer
    raise AttributeError(f"module 'gpen_cli' has no attribute {name!r}")
