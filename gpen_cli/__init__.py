"""gpen-cli: face restoration with GPEN (Yang et al., CVPR 2021)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gpen_cli.restorer import FaceRestorer

__all__ = ["FaceRestorer", "__version__"]


def __getattr__(name: str) -> Any:
    # Importing torch and OpenCV takes seconds: only pay for it when the API is used.
    if name == "FaceRestorer":
        from gpen_cli.restorer import FaceRestorer

        return FaceRestorer
    raise AttributeError(f"module 'gpen_cli' has no attribute {name!r}")
