"""One photo's work before and after the generator; every failure becomes a report entry.

`FaceRestorer.restore` cut where the generator runs, so the engine can give the generator
faces from several photos at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from gpen_cli.batch.scan import Task
from gpen_cli.core.errors import GpenError, message_of
from gpen_cli.pipeline.outputs import OutputOptions, write_outputs
from gpen_cli.pipeline.report import FacesSummary, ReportEntry, naming, review_reasons
from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage, RestoredFace, RestoreResult
from gpen_cli.stages.load import LoadedImage, load_image
from gpen_cli.stages.metadata import dropped_note


@dataclass
class Prepared:
    """A photo decoded, its faces found and cropped, waiting for the generator."""

    task: Task
    loaded: LoadedImage
    prepared: PreparedImage
    started: float = field(default_factory=time.perf_counter)


def failed_entry(task: Task, exc: BaseException, started: float) -> ReportEntry:
    """The report entry of a photo that could not be restored, saying why in one line."""
    if isinstance(exc, GpenError):
        error = naming(task.source, message_of(exc))
    else:
        error = f"{task.source}: unexpected {type(exc).__name__}: {exc}"
    return ReportEntry(
        input=str(task.source),
        output=None,
        status="failed",
        error=error,
        seconds=round(time.perf_counter() - started, 3),
    )


def prepare(restorer: FaceRestorer, task: Task) -> Prepared:
    """Decode the photo and crop its faces (the one crop of an aligned photo).

    Several workers call this at once: the restorer's detector must be thread-safe, as the
    built-in ones are (they serialise their model calls themselves).
    """
    started = time.perf_counter()
    # An aligned crop is upscaled at the model's size, not the photo's.
    upscale = 1 if restorer.aligned else restorer.config.upscale
    loaded = load_image(task.source, upscale=upscale)
    prepared = restorer.prepare(loaded.pixels, str(task.source))
    return Prepared(task, loaded, prepared, started)


def finish(
    restorer: FaceRestorer, item: Prepared, restored: list[RestoredFace], options: OutputOptions
) -> ReportEntry:
    """Paste the restored faces back, write the outputs, and say how it went."""
    task = item.task
    try:
        # The decoded photo is not needed afterwards unless --compare shows it as it was.
        result = restorer.finish(item.prepared, restored, reuse_input=not options.compare)
        write_outputs(
            item.loaded,
            result,
            task.output,
            options,
            source=task.source,
            root=task.output_root,
            aligned=restorer.aligned,
        )
    except Exception as exc:  # one bad photo must not take the others down
        return failed_entry(task, exc, item.started)
    faces = faces_summary(result)
    reasons = review_reasons(result.items, restorer.config.review_below)
    return ReportEntry(
        input=str(task.source),
        output=str(task.output),
        status="ok" if faces.count or restorer.aligned else "no_face",
        faces=faces,
        seconds=round(time.perf_counter() - item.started, 3),
        note=_note(item.loaded, task.output),
        output_size=[int(result.image.shape[1]), int(result.image.shape[0])],
        review=bool(reasons),
        review_reasons=reasons,
    )


def faces_summary(result: RestoreResult) -> FacesSummary:
    """The report's account of a photo's faces: every face found (restored or not), boxes
    and scores in detection order as ever, `items` in reading order with their scores."""
    items = result.items  # in detection order
    ordered = sorted(items, key=lambda item: item.index)
    return FacesSummary(len(items), [i.box for i in items], [i.score for i in items], ordered)


def _note(loaded: LoadedImage, output: Path) -> str | None:
    """The frames left out, and the metadata the output's format could not carry."""
    dropped = dropped_note(loaded.metadata, output.suffix.lower())
    notes = [note for note in (loaded.frames_note, dropped) if note]
    return "; ".join(notes) or None


def faces_restored(entry: ReportEntry, aligned: bool) -> int:
    """Faces that went through the generator for this entry (an aligned photo is one)."""
    if entry.status != "ok":
        return 0
    return 1 if aligned else entry.faces.restored
