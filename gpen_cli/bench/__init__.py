"""`gpen bench`: time every stage of the pipeline under several forward configurations.

Each configuration (batch size, precision, compiled or not, exact or fast) restores the same
workload through `FaceRestorer` itself, the code `gpen restore` and `gpen batch` run: real
photos through decode, detect, align, forward, mask, paste and encode, or, when no detector
weights are at hand, random aligned crops through the forward and mask alone. Warm-up runs
are not timed; every figure is the median of `repeats` passes. The faithful path (exact
formulation, FP32, batch 1, eager) is always measured and every speed-up is relative to it.

The modules, in the order a run uses them: `workload` (what is timed), `networks` (the
models timed), `timing` (one configuration), `figures` (what to read a timing against),
`run` (the whole run and its `BenchReport`), `table` (rows and markdown). A tool: it may
import any layer below the command line, never the command line.
"""
