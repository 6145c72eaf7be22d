"""`gpen batch`: restore every photo of a folder tree, keeping the device busy.

    layout.py   which folders are read and written, and the rules that keep the input untouched
    scan.py     the lazy, sorted walk of the input tree and the plan for each file
    gather.py   faces of several photos packed into forward batches of a fixed size
    steps.py    one photo's work before and after the generator, failures as report entries
    runner.py   the engine: thread pools that overlap those steps with the generator, for a
                folder scan (`gpen batch`) or the files given (`gpen restore`)
    signals.py  Ctrl-C / SIGTERM: the first finishes what is in flight, the second stops at once

`restore_folder` is the whole command without the CLI: give it a FaceRestorer, a layout and
options, and a `threading.Event` to stop it.
"""

from gpen_cli.batch.layout import BatchLayout, plan_layout
from gpen_cli.batch.runner import BatchOptions, BatchOutcome, restore_folder, run_batch
from gpen_cli.stages.load import READABLE_EXTENSIONS

__all__ = [
    "READABLE_EXTENSIONS",
    "BatchLayout",
    "BatchOptions",
    "BatchOutcome",
    "plan_layout",
    "restore_folder",
    "run_batch",
]
