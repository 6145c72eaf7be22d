"""The per-input account every command gives: printed as a table, written as JSON.

The JSON report (`--report FILE.json`) is an object:

    schema_version  REPORT_SCHEMA_VERSION; raised whenever a key changes meaning or goes
    summary         counts by status (ok, no_face, skipped, failed) and `faces`; `review`
                    (entries marked for review) and `lowest_identity` ({input, face,
                    identity} of the lowest-scored face, or null)
    command, ...    the command and its settings (model, upscale, folders, timings)
    results         one object per input, sorted by input path:
        input, output     paths as given / as written (output null when nothing was)
        status            ok | no_face | skipped | failed
        faces             count; boxes as [x1, y1, x2, y2] in the input's pixels (left, top,
                          right, bottom, floats); scores, the detector's confidence in [0, 1];
                          items, one object per face found, in reading order (left to right
                          by box centre, ties top to bottom): index, box, score, restored,
                          why (not restored; null when restored), identity, quality_before,
                          quality_after (null without scoring)
        review            true when a restored face's identity is below the review threshold
        review_reasons    one line per such face ("face 2: identity 0.41 below 0.5")
        error             one line saying why, for failed and skipped inputs
        seconds           wall time spent on this input
        note              worth knowing though not an error (e.g. frames left out)
        output_size       [width, height] of the written image
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import OutputError, joined
from gpen_cli.io.atomic import remove_partials_of, write_atomically
from gpen_cli.stages.faces import FaceItem

REPORT_SCHEMA_VERSION = 3
Status = Literal["ok", "no_face", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "no_face", "skipped", "failed")

# Why an input was skipped, for programs reading the report (`error` says it for people):
#   already_done    `gpen batch`: its output exists from an earlier run (--overwrite redoes it)
#   exists          `gpen restore`: its output exists; --overwrite replaces it
#   earlier_output  `gpen restore`: the input is another input's output from an earlier run
#   not_an_image    `gpen batch`: the file's extension is not an image's
Reason = Literal["already_done", "exists", "earlier_output", "not_an_image"]


@dataclass
class FacesSummary:
    count: int = 0
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    items: list[FaceItem] = field(default_factory=list)

    @property
    def restored(self) -> int:
        """Faces that went through the generator."""
        return sum(item.restored for item in self.items) if self.items else self.count


@dataclass
class ReportEntry:
    input: str
    output: str | None
    status: Status
    faces: FacesSummary = field(default_factory=FacesSummary)
    error: str | None = None
    reason: Reason | None = None  # set when skipped: which of the reasons above
    seconds: float = 0.0
    note: str | None = None  # worth knowing though not an error, e.g. frames left out
    output_size: list[int] | None = None  # width, height of the written image
    review: bool = False  # a restored face's identity is below the review threshold
    review_reasons: list[str] = field(default_factory=list)


def review_reasons(items: list[FaceItem], below: float | None) -> list[str]:
    """One line per restored face whose identity is below `below` (none when unset)."""
    if below is None:
        return []
    return [
        f"face {item.index}: identity {item.identity:.2f} below {below:g}"
        for item in items
        if item.restored and item.identity is not None and item.identity < below
    ]


def naming(source: Path | str, message: str) -> str:
    """`message` as one report line that names the input it is about."""
    return message if str(source) in message else joined(f"{source}: ", message)


def upscale_settings(config: RestoreConfig) -> dict:
    """What the report says about background upscaling: the factor and the upsampler used."""
    return {"upscale": config.upscale, "upsampler": config.upsampler}


def summarize(entries: list[ReportEntry]) -> dict[str, Any]:
    """Counts by status, faces, entries to review, and the lowest identity score."""
    counts: dict[str, Any] = {status: 0 for status in STATUSES}
    for entry in entries:
        counts[entry.status] += 1
    counts["faces"] = sum(entry.faces.count for entry in entries)
    counts["review"] = sum(entry.review for entry in entries)
    counts["lowest_identity"] = lowest_identity(entries)
    return counts


def lowest_identity(entries: list[ReportEntry]) -> dict[str, Any] | None:
    """{input, face, identity} of the restored face scored least like its input, or None."""
    scored = [
        (item.identity, entry.input, item.index)
        for entry in entries
        for item in entry.faces.items
        if item.identity is not None
    ]
    if not scored:
        return None
    identity, source, index = min(scored)
    return {"input": source, "face": index, "identity": identity}


def review_line(counts: dict[str, Any]) -> str | None:
    """The end-of-run line about scores (None without any): photos to review and the face
    scored least like its input."""
    lowest = counts.get("lowest_identity")
    if lowest is None:
        return None
    photos = counts.get("review", 0)
    to_review = f"{photos} photo{'s' if photos != 1 else ''} to review; "
    return (
        f"{to_review}lowest identity {lowest['identity']:.2f}: face {lowest['face']} "
        f"of {lowest['input']}"
    )


def report_payload(entries: list[ReportEntry], extra: dict | None = None) -> dict:
    """The report's JSON object: what `write_report` writes, and what a review page of a
    run reads when no report file was asked for."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "summary": summarize(entries),
        **(extra or {}),
        "results": [asdict(e) for e in entries],
    }


def write_report(path: Path, entries: list[ReportEntry], extra: dict | None = None) -> None:
    """Write the JSON report atomically (a stopped run never leaves half a report)."""
    payload = report_payload(entries, extra)
    path = Path(path)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
        raise OutputError(f"cannot write report {path}: not a regular file; it is never replaced")
    data = json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write report {path}: {exc.strerror or exc}") from None
    remove_partials_of(path)
    write_atomically(path, data, overwrite=True)


def with_earlier_results(path: Path | None, entries: list[ReportEntry]) -> list[ReportEntry]:
    """A resumed run's entries, with each photo it found already done replaced by what the
    earlier run's report at `path` said of it, so the report describes the whole job.

    Only a readable report of this schema counts, and only for a photo it says was restored
    to the same output; anything else keeps its "already done" entry.
    """
    if path is None or not Path(path).is_file():
        return entries
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
        if earlier.get("schema_version") != REPORT_SCHEMA_VERSION:
            return entries
        done = {row["input"]: row for row in earlier["results"] if row["status"] != "failed"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return entries
    return [_earlier(entry, done.get(entry.input)) for entry in entries]


def _earlier(entry: ReportEntry, row: dict | None) -> ReportEntry:
    if entry.reason != "already_done" or row is None or row.get("output") is None:
        return entry
    try:
        items = [FaceItem(**item) for item in row["faces"].get("items", [])]
        faces = FacesSummary(**{**row["faces"], "items": items})
        earlier = ReportEntry(**{**row, "faces": faces})
    except (KeyError, TypeError):
        return entry
    return earlier if earlier.status in ("ok", "no_face") else entry
