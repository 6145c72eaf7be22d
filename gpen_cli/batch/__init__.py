"""`gpen batch`: restore every photo of a folder tree, keeping the device busy.

    layout.py     which folders are read and written, and the rules that keep the input untouched
    scan.py       the lazy, sorted walk of the input tree and the plan for each file
    job.py        what an engine runs: the photos (a folder scan or a list) and the output options,
                  and the preamble around them (lock, stale partials, plan, count)
    engine.py     the one engine interface, `Engine.run(job, stop, on_event)`, and the tally
    engines.py    the table the commands pick an engine from
    steps.py      one photo's work before and after the generator, failures as report entries
    runner.py     the thread engine: pools that overlap those steps with the generator (the
                  gatherer and the read-ahead are gpen_cli/flow's, shared with `gpen video`)
    ray_engine.py the Ray engine: Ray Data feeding model actors that run the thread engine
    signals.py    Ctrl-C / SIGTERM: the first finishes what is in flight, the second stops at once

The whole command without the CLI, given a FaceRestorer and a `threading.Event` to stop it:
`ThreadEngine(restorer).run(PhotoJob(FolderScan(plan_layout(folder, output))), stop)`.
"""

from gpen_cli.batch.engine import BatchOutcome, Engine, PhotoProgress
from gpen_cli.batch.job import FolderScan, GivenItems, PhotoJob
from gpen_cli.batch.layout import BatchLayout, plan_layout
from gpen_cli.batch.runner import ThreadEngine
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.stages.load import READABLE_EXTENSIONS

__all__ = [
    "READABLE_EXTENSIONS",
    "BatchLayout",
    "BatchOutcome",
    "Engine",
    "FolderScan",
    "GivenItems",
    "OutputOptions",
    "PhotoJob",
    "PhotoProgress",
    "ThreadEngine",
    "plan_layout",
]
