"""A film's frames through the restorer, each step in its own thread:

    read ─▶ prepare ─▶ forward ─▶ finish ─▶ caller (encode, mux)
    decode  detect,    faces of   paste
            smooth,    several    back
            align      frames per
                       batch

Every hand-over is a bounded queue, so a fixed number of frames is in memory however long
the film. Frames stay in order from end to end: prepare runs in one thread because the
landmark smoother must see the frames in order, and the forward step hands frames on only
in the order they came. Torch, OpenCV and FFmpeg release the GIL in their kernels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

from gpen_cli.flow.gather import CropGatherer
from gpen_cli.flow.read_ahead import background
from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage
from gpen_cli.video.media import Frame

T = TypeVar("T")

QUEUE_DEPTH = 2  # frames waiting between two steps


def step(items: Iterable[T], name: str) -> Iterator[T]:
    """One step of the film's pipeline in a thread of its own, QUEUE_DEPTH frames ahead."""
    return background(items, f"gpen-video-{name}", QUEUE_DEPTH)


def forward_in_order(
    restorer: FaceRestorer, prepared: Iterable[tuple[Frame, PreparedImage]], hold: int
) -> Iterator[tuple[Frame, PreparedImage, list[np.ndarray]]]:
    """Run the faces of consecutive frames through the generator in full batches, and hand
    each frame on, in order, with its restored faces.

    A frame waits until its faces' batch is full. When more than `hold` frames wait
    (a face, then a long stretch without faces), a partial batch runs.
    """
    gatherer: CropGatherer[tuple[Frame, PreparedImage]] = CropGatherer(restorer.batch_size)
    waiting: deque[tuple[Frame, PreparedImage]] = deque()
    restored: dict[int, list[np.ndarray]] = {}

    def run_batch() -> None:
        batch = gatherer.take()
        if batch is not None:
            for completed in gatherer.deliver(batch, restorer.forward(batch.crops)):
                restored[completed.item[0].index] = completed.restored

    def ready() -> Iterator[tuple[Frame, PreparedImage, list[np.ndarray]]]:
        while waiting and waiting[0][0].index in restored:
            frame, prepared_image = waiting.popleft()
            yield frame, prepared_image, restored.pop(frame.index)

    for frame, prepared_image in prepared:
        waiting.append((frame, prepared_image))
        for completed in gatherer.add((frame, prepared_image), prepared_image.model_inputs):
            restored[frame.index] = completed.restored
        if gatherer.full or (len(waiting) > hold and gatherer.pending):
            run_batch()
        yield from ready()
    while gatherer.pending:
        run_batch()
    yield from ready()


def _prepare(restorer: FaceRestorer, frames: Iterable[Frame]):
    for frame in frames:
        yield frame, restorer.prepare(frame.image)


def _finish(restorer: FaceRestorer, restored: Iterable[tuple[Frame, PreparedImage, list]]):
    for frame, prepared_image, faces in restored:
        frame.faces = len(faces)
        image = restorer.finish(prepared_image, faces).image if faces else None
        yield frame, image


def restore_frames(
    restorer: FaceRestorer, frames: Iterable[Frame]
) -> Iterator[tuple[Frame, np.ndarray | None]]:
    """Each frame with its restored picture (upright BGR), or None when it had no face,
    in order."""
    hold = 2 * restorer.batch_size + 2
    prepared = step(_prepare(restorer, step(frames, "read")), "prepare")
    restored = step(forward_in_order(restorer, prepared, hold), "forward")
    return step(_finish(restorer, restored), "finish")
