"""Ctrl-C and SIGTERM during a batch: the first asks for a clean stop, the second stops now.

A clean stop lets the photos in flight be written and the report be saved. Stopping at
once is `os._exit`: nothing more is written, and what a write in progress left behind is a
hidden ".partial" file, which the next run removes before it starts.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gpen_cli.core.errors import EXIT_INTERRUPTED

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def graceful_stop(
    stop: threading.Event,
    on_first: Callable[[signal.Signals], None] | None = None,
    on_second: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM sets `stop` and calls `on_first` with the
    signal (a user's Ctrl-C, or a service manager's SIGTERM, which is told differently); the
    next one calls `on_second` and exits the process with code 130 at once.

    Outside the main thread signals cannot be handled, and the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def handle(signum: int, frame: object) -> None:
        nonlocal received
        received += 1
        if received == 1:
            stop.set()
            if on_first is not None:
                on_first(signal.Signals(signum))
            return
        if on_second is not None:
            on_second()
        os._exit(EXIT_INTERRUPTED)

    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
