"""How long a run of photos has left, from its faces: the generator's work, not the photos.

A photo of 29 faces takes as long as 29 portraits, so a count of photos misleads; photos
skipped as done (a resumed run) or as not images take no time at all and count for
nothing. Faces are known once a photo's detection ends; the photos not looked at yet are
reckoned at the mean faces a photo so far. The figures are read each time the bar is drawn,
so the estimate moves with the clock instead of waiting for the next photo to end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.progress import ProgressColumn, Task
from rich.table import Column
from rich.text import Text

if TYPE_CHECKING:
    from gpen_cli.batch.engine import PhotoProgress


class FaceEstimate:
    """An `on_progress` hook keeping the run's faces found and restored; `seconds_left`.

    The thread engine tells each photo's faces found and restored as they go; the Ray engine
    only each photo's end, which carries its faces too.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.total: int | None = None  # photos to restore (skips left out), once counted
        self.photos_done = 0  # of those, with their entry
        self.faces_written = 0  # faces restored in the photos done
        self.photos_seen = 0  # photos whose faces are known: done, or found in flight
        self.faces_seen = 0  # their faces
        self.in_flight: dict[str, list[int]] = {}  # found in flight: [faces, restored]

    def __call__(self, event: PhotoProgress) -> None:
        if event.stage == "found":
            self.in_flight[event.source] = [event.faces_found, 0]
            self.photos_seen += 1
            self.faces_seen += event.faces_found
        elif event.stage == "restored" and event.source in self.in_flight:
            self.in_flight[event.source][1] = event.faces_restored
        elif event.stage == "done" and event.status != "skipped":
            self.photos_done += 1
            self.faces_written = event.faces_done
            if self.in_flight.pop(event.source, None) is None:  # its faces were not told
                self.photos_seen += 1
                self.faces_seen += event.faces_found

    @property
    def faces_restored(self) -> int:
        """Faces through the generator so far: in the photos written and those in flight."""
        return self.faces_written + sum(restored for _, restored in self.in_flight.values())

    def faces_per_second(self) -> float:
        elapsed = self.clock() - self.started
        return self.faces_restored / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float | None:
        """The run's time left, None until it can be told (no total yet, nothing done yet).

        The faces left at the run's faces/s; never less than the photos left at its photos/s,
        since a photo without faces still takes its decoding and detection.
        """
        if self.total is None:
            return None
        elapsed = self.clock() - self.started
        photos_left = max(0, self.total - self.photos_done)
        if photos_left == 0:
            return 0.0
        estimates = []
        if self.photos_done:
            estimates.append(photos_left * elapsed / self.photos_done)
        restored = self.faces_restored
        if restored:
            unseen = max(0, photos_left - len(self.in_flight))
            mean = self.faces_seen / self.photos_seen if self.photos_seen else 0.0
            waiting = sum(faces - done for faces, done in self.in_flight.values())
            estimates.append((waiting + unseen * mean) * elapsed / restored)
        return max(estimates) if estimates else None


class EtaColumn(ProgressColumn):
    """ "ETA h:mm:ss" from a FaceEstimate, "-:--:--" while it cannot be told."""

    max_refresh = 1.0  # a figure that changes ten times a second cannot be read

    def __init__(self, estimate: FaceEstimate) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.estimate = estimate

    def render(self, task: Task) -> Text:
        seconds = self.estimate.seconds_left()
        if seconds is None:
            return Text("ETA -:--:--", style="progress.remaining")
        minutes, second = divmod(round(seconds), 60)
        hours, minute = divmod(minutes, 60)
        return Text(f"ETA {hours}:{minute:02d}:{second:02d}", style="progress.remaining")
