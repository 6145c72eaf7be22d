"""GPEN generator: architecture (gpen.py) and checkpoint loading (loading.py)."""

from gpen_cli.models.gpen import FullGenerator
from gpen_cli.models.loading import build_gpen, infer_config, load_gpen

__all__ = ["FullGenerator", "build_gpen", "infer_config", "load_gpen"]
