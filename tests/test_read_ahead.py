"""The read-ahead both engines use: items in order, no more than `depth` ahead, the reader's
error after the items before it, and a close that stops the reader and closes its source."""

from __future__ import annotations

import threading
import time

import pytest

from gpen_cli.flow.read_ahead import END, ReadAhead, background


def test_items_come_in_order_and_the_reader_stays_within_its_depth() -> None:
    read: list[int] = []

    def source():
        for number in range(6):
            read.append(number)
            yield number

    ahead = ReadAhead(source(), name="test-ahead", depth=2)
    deadline = time.monotonic() + 5
    while len(read) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # room for a reader that ignores its bound to overrun
    assert len(read) == 3  # two in the buffer, one in the reader's hand waiting for room
    assert [ahead.take() for _ in range(6)] == list(range(6))
    assert ahead.take() is END and ahead.take() is END and ahead.at_end()
    ahead.close(timeout=5)


def test_the_readers_error_comes_after_the_items_read_before_it() -> None:
    def source():
        yield "a"
        yield "b"
        raise OSError("the folder went away")

    taken = []
    with pytest.raises(OSError, match="the folder went away"):
        for item in background(source(), "test-failing", depth=1):
            taken.append(item)
    assert taken == ["a", "b"]


def test_closing_stops_an_endless_source_and_closes_it() -> None:
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield 1
        finally:
            closed.set()

    items = background(endless(), "test-endless", depth=2)
    assert next(items) == 1
    items.close()  # the consumer leaves early: the reader must not run on
    assert closed.wait(5)
    assert not any(t.name == "test-endless" for t in threading.enumerate())
