"""Pack the faces of several photos into generator batches of one fixed size.

A photo with three faces and one with five make one batch of eight, not two half-empty
ones: on a GPU the cost of a forward barely depends on how full it is. Each photo is handed
back, with its restored faces in order, as soon as its last face has been through.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")


@dataclass
class _Photo(Generic[Item]):
    item: Item
    restored: list[np.ndarray | None]
    remaining: int
    error: BaseException | None = None


@dataclass
class Completed(Generic[Item]):
    """A photo whose faces have all been through the generator (or whose batch failed)."""

    item: Item
    restored: list[np.ndarray]
    error: BaseException | None = None


@dataclass
class Batch(Generic[Item]):
    crops: list[np.ndarray]
    _slots: list[tuple[_Photo[Item], int]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.crops)

    def photos(self) -> list[tuple[Item, int, int]]:
        """Each photo with a face in this batch: (item, its faces delivered so far, all its
        faces), for progress displays; read it after `deliver`."""
        seen: dict[int, _Photo[Item]] = {}
        for photo, _ in self._slots:
            seen.setdefault(id(photo), photo)
        return [
            (photo.item, len(photo.restored) - photo.remaining, len(photo.restored))
            for photo in seen.values()
        ]


class CropGatherer(Generic[Item]):
    """Queue of faces waiting for the generator, across photos, in arrival order."""

    def __init__(self, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self._waiting: deque[tuple[_Photo[Item], int, np.ndarray]] = deque()

    @property
    def pending(self) -> int:
        """Faces waiting for a batch."""
        return len(self._waiting)

    @property
    def full(self) -> bool:
        return len(self._waiting) >= self.batch_size

    def add(self, item: Item, crops: list[np.ndarray]) -> list[Completed[Item]]:
        """Queue a photo's faces; a photo without faces is complete at once."""
        if not crops:
            return [Completed(item, [])]
        photo = _Photo(item, [None] * len(crops), len(crops))
        self._waiting.extend((photo, index, crop) for index, crop in enumerate(crops))
        return []

    def discard(self) -> list[Item]:
        """Empty the queue; the photos that had faces in it (none of them can complete)."""
        photos = {id(photo): photo.item for photo, _, _ in self._waiting}
        self._waiting.clear()
        return list(photos.values())

    def take(self) -> Batch[Item] | None:
        """The next batch: `batch_size` faces, or all that wait when fewer do (a flush)."""
        if not self._waiting:
            return None
        count = min(self.batch_size, len(self._waiting))
        taken = [self._waiting.popleft() for _ in range(count)]
        return Batch([crop for _, _, crop in taken], [(photo, index) for photo, index, _ in taken])

    def deliver(
        self,
        batch: Batch[Item],
        restored: list[np.ndarray] | None,
        error: BaseException | None = None,
    ) -> list[Completed[Item]]:
        """Hand a batch's results back (or the error that lost it); returns the photos this
        completes. A photo with a face in a failed batch completes with that error."""
        if error is None and (restored is None or len(restored) != len(batch)):
            got = "nothing" if restored is None else f"{len(restored)} faces"
            error = RuntimeError(f"the generator returned {got} for a batch of {len(batch)}")
        completed: list[Completed[Item]] = []
        for position, (photo, index) in enumerate(batch._slots):
            if error is not None:
                photo.error = photo.error or error
            else:
                photo.restored[index] = restored[position]
            photo.remaining -= 1
            if photo.remaining == 0:
                faces = [] if photo.error else [face for face in photo.restored if face is not None]
                completed.append(Completed(photo.item, faces, photo.error))
        return completed
