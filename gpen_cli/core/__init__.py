"""The core: the values and policies every layer uses — errors, name matching, defaults,
the configuration (`RestoreConfig`) and the settings file, devices, memory and time budgets,
where outputs may be written. It imports nothing from the package but itself and the model
registry's table (`gpen_cli.weights.registry`, which is torch-free), so it stays importable
without torch, the networks or the pipeline.
"""
