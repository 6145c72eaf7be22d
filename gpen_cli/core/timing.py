"""Seconds spent in each pipeline stage, for `gpen bench` and progress reports."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator


class StageClock:
    """Sums the wall time spent in named stages; several threads may time at once."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[name] += elapsed

    def take(self) -> dict[str, float]:
        """The seconds so far, per stage, and start again from zero."""
        with self._lock:
            seconds, self.seconds = dict(self.seconds), defaultdict(float)
        return seconds


class NoClock:
    """A clock that times nothing: the default, so stages cost no bookkeeping."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield
