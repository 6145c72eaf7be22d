"""The models' weights: the registry of known models (`registry`, its built-in entries in
`catalog`), reading checkpoint files (`checkpoints`), where the files live (`store`), fetching
(`download`), checking (`verify`) and installing copies (`install`), and the offline check of
what a configuration needs (`offline`). `registry` and `catalog` are torch-free and rank with the
core, `checkpoints` with the networks; the rest may import the core, io and models. This file
imports nothing, so that the core can read the registry without loading the rest.
"""
