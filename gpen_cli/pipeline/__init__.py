"""The pipeline: `FaceRestorer` (the stages run in order on one photo), the resolver that turns
a `RestoreConfig` into files and built networks, writing a photo's outputs, and the run report.
It may import the core, io, models, weights and stages, never an engine, a tool or the command
line.
"""
