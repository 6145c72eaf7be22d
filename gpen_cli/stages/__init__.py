"""The restoration pipeline, one module per stage, in the order an image meets them.

    load.py     read any image (8/16-bit, grey, alpha, EXIF orientation)
    resize.py   optional short-edge resize (--short-edge)
    detect.py   face boxes + 5 landmarks (--detector, --landmarks)
    align.py    similarity transform to GPEN's template, aligned crop (--aligned skips it)
    clahe.py    optional contrast equalisation of the crops (--clahe)
    forward.py  the GPEN generator over batches of crops (--batch-size, --half, --compile)
    blend.py    restored vs. input crop by fidelity weight (--fidelity-weight)
    paste.py    inverse warp of each face with a feathered mask, only over its region
    save.py     atomic write, never over an input (--ext, --overwrite)

`chain.py` holds the stage objects, `registry.py` which of them run, in which step and order
(the built-in ones in `builtin.py`); `gpen_cli.pipeline.restorer.FaceRestorer` runs them.
"""
