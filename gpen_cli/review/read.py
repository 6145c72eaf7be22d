"""A JSON report read into what the review page shows: its photos, their faces and scores.

Reads schema 2 and 3 alike: where a report has no per-face `items` (or no scores), the faces
come from `faces.boxes` and `faces.scores` and their identity and quality are None, shown
as "—"; without `review` keys no photo is to be reviewed.

A report's paths are as the run was given them (relative ones relative to the folder the
run was started in): each is looked for from the current folder, then from the report's.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpen_cli.core.errors import InputError


@dataclass
class Face:
    """One face found in a photo, with the scores the report gives it (None: not scored)."""

    index: int
    box: list[float] | None
    detector: float | None = None
    restored: bool | None = None
    why: str | None = None
    identity: float | None = None
    quality_before: float | None = None
    quality_after: float | None = None
    flagged: bool = False  # a review reason names this face


@dataclass
class Photo:
    """One result of the report, with its files found on disk (None: not found)."""

    number: int  # its place in the report's results, from 1
    input: str
    output: str | None
    status: str
    input_path: Path | None = None
    output_path: Path | None = None
    error: str | None = None
    note: str | None = None
    faces: list[Face] = field(default_factory=list)
    review: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """The files the report names for this photo that are not on disk."""
        gone = [self.input] if self.input_path is None else []
        return gone + ([self.output] if self.output and self.output_path is None else [])

    @property
    def worst_identity(self) -> float | None:
        scores = [face.identity for face in self.faces if face.identity is not None]
        return min(scores) if scores else None


@dataclass
class Lowest:
    input: str
    face: int
    identity: float


@dataclass
class ReviewData:
    """What the page is made of: the photos in the report's order and its summary."""

    photos: list[Photo]
    counts: dict[str, int]
    lowest: Lowest | None
    scored: bool  # whether any face has an identity score


def read_report(path: Path) -> ReviewData:
    """The report at `path`; InputError naming the file when it cannot be read or is not a
    gpen report."""
    path = Path(path)
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a report") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a JSON report (not UTF-8 text)") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a JSON report ({exc})") from None
    return review_data(payload, source=path)


def review_data(payload: Any, source: Path | None = None) -> ReviewData:
    """A report's JSON object as ReviewData; `source` (the report's file) names it in errors
    and is the second place its relative paths are looked for."""
    named = str(source) if source is not None else "the report"
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise InputError(f"{named}: not a gpen report (it has no list of results)")
    folder = Path(source).parent if source is not None else None
    photos = [_photo(number, row, named, folder) for number, row in enumerate(results, 1)]
    summary = payload.get("summary") if isinstance(payload.get("summary"), dict) else {}
    return ReviewData(
        photos=photos,
        counts=_counts(photos, summary),
        lowest=_lowest(summary.get("lowest_identity"), photos),
        scored=any(photo.worst_identity is not None for photo in photos),
    )


def _photo(number: int, row: Any, named: str, folder: Path | None) -> Photo:
    if not isinstance(row, dict) or not isinstance(row.get("input"), str):
        raise InputError(f"{named}: result {number} is not a photo's entry (no input path)")
    output = row.get("output") if isinstance(row.get("output"), str) else None
    reasons = [str(r) for r in row.get("review_reasons") or [] if isinstance(r, str)]
    photo = Photo(
        number=number,
        input=row["input"],
        output=output,
        status=str(row.get("status") or "unknown"),
        input_path=locate(row["input"], folder),
        output_path=locate(output, folder) if output else None,
        error=_text(row.get("error")),
        note=_text(row.get("note")),
        faces=_faces(row.get("faces"), reasons),
        review=row.get("review") is True,
        reasons=reasons,
    )
    return photo


def locate(given: str, folder: Path | None) -> Path | None:
    """The file a report names: as given (from the current folder), else from the report's
    `folder`; None when neither is a file."""
    path = Path(given)
    candidates = [path] if path.is_absolute() or folder is None else [path, folder / path]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return None


def _faces(faces: Any, reasons: list[str]) -> list[Face]:
    """The faces of one entry: its `items` (schema 3), else its boxes and detector scores."""
    if not isinstance(faces, dict):
        return []
    items = faces.get("items")
    if isinstance(items, list):
        found = [_item(position, item) for position, item in enumerate(items)]
    else:
        boxes = faces.get("boxes") if isinstance(faces.get("boxes"), list) else []
        scores = faces.get("scores") if isinstance(faces.get("scores"), list) else []
        found = [
            Face(index=i, box=_box(box), detector=_number(scores[i] if i < len(scores) else None))
            for i, box in enumerate(boxes)
        ]
    named = {reason.split(":", 1)[0].strip() for reason in reasons}
    for face in found:
        face.flagged = f"face {face.index}" in named
    return found


def _item(position: int, item: Any) -> Face:
    item = item if isinstance(item, dict) else {}
    index = item.get("index")
    restored = item.get("restored")
    return Face(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        box=_box(item.get("box")),
        detector=_number(item.get("score")),
        restored=restored if isinstance(restored, bool) else None,
        why=_text(item.get("why")),
        identity=_number(item.get("identity")),
        quality_before=_number(item.get("quality_before")),
        quality_after=_number(item.get("quality_after")),
    )


def _counts(photos: list[Photo], summary: dict) -> dict[str, int]:
    """Photos by status, faces and photos to review: the summary's where it has them."""
    counts = {"photos": len(photos)}
    for status in ("ok", "no_face", "skipped", "failed"):
        counts[status] = sum(photo.status == status for photo in photos)
    counts["faces"] = sum(len(photo.faces) for photo in photos)
    review = summary.get("review")
    valid = isinstance(review, int) and not isinstance(review, bool)
    counts["review"] = review if valid else sum(photo.review for photo in photos)
    return counts


def _lowest(given: Any, photos: list[Photo]) -> Lowest | None:
    """The summary's lowest identity, else the lowest of the faces' own."""
    if isinstance(given, dict):
        identity = _number(given.get("identity"))
        face = given.get("face")
        if identity is not None and isinstance(given.get("input"), str) and isinstance(face, int):
            return Lowest(input=given["input"], face=face, identity=identity)
    scored = [
        (f.identity, p.input, f.index) for p in photos for f in p.faces if f.identity is not None
    ]
    if not scored:
        return None
    identity, source, index = min(scored)
    return Lowest(input=source, face=index, identity=identity)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _box(value: Any) -> list[float] | None:
    if not isinstance(value, list) or len(value) != 4:
        return None
    numbers = [_number(v) for v in value]
    return None if None in numbers else numbers  # type: ignore[return-value]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
