"""Defaults shared by the Python API and the CLI (kept free of heavy imports)."""

DEFAULT_MODEL = "GPEN-BFR-512"
DEFAULT_DETECTOR = "retinaface-resnet50"
