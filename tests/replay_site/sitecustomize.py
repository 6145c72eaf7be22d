"""Test-only start-up hook for the processes a test starts (`gpen` run as a command, Ray's
workers) where the real RetinaFace weights are absent.

Python imports `sitecustomize` at start-up from its path; tests/conftest.py's
`process_environment` puts this folder first on PYTHONPATH, and nothing else does: gpen_cli
knows nothing of it. Once `gpen_cli.pipeline.resolve` is imported, its `load_detector` returns
tests/replay.py's ReplayDetector (the official detector's faces for the test photos, none for
any other picture), as the in-process tests' monkeypatch does. The patch waits for that
import, so a process that never makes it (Ray's own helpers) loads nothing more.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PATCHED = "gpen_cli.pipeline.resolve"


def _load_replay_detector(config, device):
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))
    from replay import load_replay_detector

    return load_replay_detector(config, device)


class _ReplayOnceImported(importlib.abc.MetaPathFinder):
    """Finds gpen_cli.pipeline.resolve as the other finders do, and patches it once executed."""

    def find_spec(self, name, path, target=None):
        if name != PATCHED:
            return None
        sys.meta_path.remove(self)  # one module, once; and not asked again by find_spec below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.load_detector = _load_replay_detector

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _ReplayOnceImported())
