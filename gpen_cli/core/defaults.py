"""Limits shared by the Python API and the CLI (kept free of heavy imports).

The pipeline's defaults live in `gpen_cli.core.config.RestoreConfig`.
"""

# Largest photo decoded, in pixels. Pillow refuses headers above ~179 MP on its own; this
# limit sits below it so the message is ours.
DEFAULT_MAX_PIXELS = 150_000_000
