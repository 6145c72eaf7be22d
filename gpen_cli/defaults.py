"""Defaults shared by the Python API and the CLI (kept free of heavy imports)."""

DEFAULT_MODEL = "GPEN-BFR-512"
DEFAULT_DETECTOR = "retinaface-resnet50"

# Largest photo decoded, in pixels. Pillow refuses headers above ~179 MP on its own; this
# limit sits below it so the message is ours.
DEFAULT_MAX_PIXELS = 150_000_000
# Longest short side --short-edge accepts: beyond it no face gains detail, only memory goes.
MAX_SHORT_EDGE = 8192
