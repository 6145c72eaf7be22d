"""The upsampler's progress over its tiles, as a task of a rich progress display."""

from __future__ import annotations

import time

from rich.progress import Progress, TaskID

# A photo upscaled faster than this gets no bar: it would only flicker.
SHOW_AFTER_S = 1.0


class TileProgress:
    """An `on_tile(done, total)` callback that shows a bar once a photo takes over a second."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if done == 0:  # a new photo starts
            self.started = time.perf_counter()
            return
        late = time.perf_counter() - self.started > SHOW_AFTER_S
        if self.task is None and done < total and late:
            self.task = self.progress.add_task("Upscaling tiles", total=total)
        if self.task is not None:
            self.progress.update(self.task, completed=done)
            if done >= total:
                self.progress.remove_task(self.task)
                self.task = None
