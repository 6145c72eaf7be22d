"""An iterator read ahead in a thread of its own, a bounded number of items at a time.

Listing a folder, decoding a frame or waiting on another process's queue then overlaps the
caller's work; the bound keeps memory fixed however long the input. What the reader raises
is raised in the caller once the items read before it have been taken, and closing stops
the reader and closes the iterator, so a chain of these unwinds from the consumer's end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

END = object()  # what `take` gives once the items are exhausted (and for ever after)


class ReadAhead(Generic[T]):
    """`items` read at most `depth` ahead of the caller by a thread named `name`.

    The caller is told of each item through `changed` (its own condition when it waits for
    other things too, as the batch engine does for its hooks); `ready` is read under it.
    """

    def __init__(
        self,
        items: Iterable[T],
        *,
        name: str,
        depth: int = 1,
        changed: threading.Condition | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.changed = changed or threading.Condition()
        self._depth = depth
        self._buffer: deque[object] = deque()
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._read, args=(iter(items),), name=name, daemon=True
        )
        self._thread.start()

    def _read(self, source: Iterator[T]) -> None:
        try:
            while True:
                try:
                    item: object = next(source, END)
                except BaseException as exc:  # handed to the caller, who decides
                    self._failure, item = exc, END
                with self.changed:
                    self.changed.wait_for(lambda: len(self._buffer) < self._depth or self._closed)
                    if self._closed:
                        return
                    self._buffer.append(item)
                    self.changed.notify_all()
                if item is END:
                    return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def ready(self) -> bool:
        """Whether the next item (or the end) is there; read under `changed`."""
        return bool(self._buffer)

    def at_end(self) -> bool:
        """Whether the items are known to be exhausted: the end is the next thing taken."""
        with self.changed:
            return len(self._buffer) == 1 and self._buffer[0] is END

    def take(self) -> T | object:
        """The next item, waiting for it; END once they are exhausted; what the reader
        raised, after the items read before it."""
        with self.changed:
            self.changed.wait_for(self.ready)
            item = self._buffer[0]
            if item is not END:
                self._buffer.popleft()
                self.changed.notify_all()
        if item is END and self._failure is not None:
            raise self._failure
        return item

    def close(self, timeout: float) -> None:
        """No more items are wanted: the reader leaves (once a blocking `next` returns) and
        closes the iterator. Waits up to `timeout` seconds for it."""
        with self.changed:
            self._closed = True
            self.changed.notify_all()
        self._thread.join(timeout)


def background(items: Iterable[T], name: str, depth: int) -> Iterator[T]:
    """Iterate `items` through a ReadAhead started on the first `next`, at most `depth`
    ahead; closing the returned iterator (or dropping it) closes the ReadAhead, waiting
    for an item in progress (a batch of frames through the generator) to end."""
    ahead = ReadAhead(items, name=name, depth=depth)
    try:
        while (item := ahead.take()) is not END:
            yield item  # type: ignore[misc]
    finally:
        ahead.close(timeout=30)
