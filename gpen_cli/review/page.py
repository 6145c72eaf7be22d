"""The review page's HTML: the summary, then a card per photo, worst identity first.

Every text and path from the report is escaped before it enters the page (a photo may be
called `<script>.jpg`), and every link is relative to the page's folder, so the folder can
be moved or zipped with the thumbnails beside it. Nothing is fetched from anywhere.
"""

from __future__ import annotations

import math
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from gpen_cli.core.words import count
from gpen_cli.review.assets import SCRIPT, STYLE
from gpen_cli.review.read import Face, Photo, ReviewData
from gpen_cli.review.thumbs import PhotoThumbs, Thumb

GENERATOR = "gpen review"  # in the page's <meta name="generator">: how a page is told ours
DASH = "\u2014"
FACES_SHOWN = 6  # per card; the rest under "N more faces"
EAGER_CARDS = 6  # images of the first cards load at once, the rest when scrolled to


def sorted_photos(photos: list[Photo]) -> list[Photo]:
    """Worst identity first; photos without scores after, in the report's order."""
    return sorted(
        photos,
        key=lambda p: (p.worst_identity is None, p.worst_identity or 0.0, p.number),
    )


def render(
    data: ReviewData, thumbs: dict[int, PhotoThumbs], files: str, page_dir: Path, title: str
) -> str:
    """The whole page: `thumbs` by photo number, in the folder `files` beside the page."""
    cards = [
        _card(photo, thumbs.get(photo.number, PhotoThumbs()), files, page_dir, place)
        for place, photo in enumerate(sorted_photos(data.photos))
    ]
    body = "\n".join(cards) or '<p class="empty">This report lists no photos.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>Review: {escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Review of the restored photos</h1>
<p class="source">{escape(title)}</p>
{_summary(data)}
{_controls(data)}
<p class="empty" id="none-to-review" hidden>No photo of this report is marked for review.</p>
{body}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _summary(data: ReviewData) -> str:
    counts = data.counts
    items = [
        (counts["photos"], "photos"),
        (counts["ok"], "restored"),
        (counts["no_face"], "no face found"),
        (counts["failed"], "failed"),
        (counts["skipped"], "skipped"),
        (counts["faces"], "faces"),
    ]
    stats = [f"<li><b>{value}</b><span>{label}</span></li>" for value, label in items]
    alert = ' class="alert"' if counts["review"] else ""
    stats.append(f"<li{alert}><b>{counts['review']}</b><span>to review</span></li>")
    lowest = data.lowest
    if lowest is None:
        stats.append(f'<li class="lowest"><b>{DASH}</b><span>lowest identity</span></li>')
    else:
        target = next((p.number for p in data.photos if p.input == lowest.input), None)
        where = f"{Path(lowest.input).name}, face {lowest.face}"
        named = f'<a href="#photo-{target}">{escape(where)}</a>' if target else escape(where)
        stats.append(
            f'<li class="lowest"><b>{_score(lowest.identity)}</b>'
            f"<span>lowest identity: {named}</span></li>"
        )
    return f'<ul class="stats">{"".join(stats)}</ul>'


def _controls(data: ReviewData) -> str:
    hint = (
        ""
        if data.scored
        else f'<span class="hint">No identity or quality scores in this report: '
        f"they show as {DASH}.</span>"
    )
    photos = count(data.counts["photos"], "photo")
    return f"""<div class="controls">
<label class="js-only"><input type="checkbox" id="only-review">Show only photos to review \
({data.counts["review"]})</label>
<span class="shown" id="shown">{photos}</span>
{hint}
</div>"""


def _card(photo: Photo, thumbs: PhotoThumbs, files: str, page_dir: Path, place: int) -> str:
    classes = "card review" if photo.review else "card"
    loading = "eager" if place < EAGER_CARDS else "lazy"
    badges = [f'<span class="badge {escape(photo.status)}">{_status(photo.status)}</span>']
    if photo.review:
        badges.insert(0, '<span class="badge review">to review</span>')
    return f"""<article class="{classes}" id="photo-{photo.number}" \
data-review="{int(photo.review)}">
<div class="head"><h2>{escape(Path(photo.input).name)}</h2>{"".join(badges)}</div>
<div class="links">{_links(photo, page_dir)}</div>
<div class="body">
<div>{_problems(photo, thumbs)}{_picture(photo, thumbs, files, loading)}</div>
<div class="faces">{_faces(photo, thumbs, files, loading)}</div>
</div>
</article>"""


def _status(status: str) -> str:
    names = {"ok": "restored", "no_face": "no face found", "failed": "failed"}
    return escape(names.get(status, status))


def _links(photo: Photo, page_dir: Path) -> str:
    parts = [_file_link("original", photo.input, photo.input_path, page_dir)]
    if photo.output:
        parts.append(_file_link("restored", photo.output, photo.output_path, page_dir))
    return " · ".join(parts)


def _file_link(label: str, given: str, found: Path | None, page_dir: Path) -> str:
    if found is None:
        return f"{label}: {escape(given)} (missing)"
    return f'{label}: <a href="{escape(href(found, page_dir))}">{escape(given)}</a>'


def href(path: Path, page_dir: Path) -> str:
    """A link to `path` from a page in `page_dir`: relative (the folder can move), or a
    file: address where none can be made (another drive on Windows)."""
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
    except ValueError:
        return Path(path).absolute().as_uri()
    return quote(relative.replace(os.sep, "/"))


def _problems(photo: Photo, thumbs: PhotoThumbs) -> str:
    lines = [f"{given}: missing (not found where the report says)" for given in photo.missing]
    if not photo.error:  # a failed or skipped photo's own error already says why
        lines += thumbs.problems
    if photo.error:
        lines.append(photo.error)
    if photo.note:
        lines.append(photo.note)
    blocks = [f'<p class="problem">{escape(line)}</p>' for line in lines]
    if photo.reasons:
        reasons = "".join(f"<li>{escape(reason)}</li>" for reason in photo.reasons)
        blocks.insert(0, f'<ul class="reasons">{reasons}</ul>')
    return "".join(blocks)


def _picture(photo: Photo, thumbs: PhotoThumbs, files: str, loading: str) -> str:
    """The before/after slider, or the one picture there is, or why there is none."""
    before, after = thumbs.before, thumbs.after
    if before and after:
        name = escape(Path(photo.input).name)
        size = _bounded(before)
        return f"""<div class="compare" style="{size}">
<img class="after" src="{_src(files, after)}" alt="after: {name}" loading="{loading}">
<img class="before" src="{_src(files, before)}" alt="before: {name}" loading="{loading}">
<span class="divider"></span><span class="tag left">before</span>\
<span class="tag right">after</span>
<input class="js-only" type="range" min="0" max="100" value="50" step="0.5" \
aria-label="Before/after position">
</div>"""
    for thumb, label in ((before, "before"), (after, "after")):
        if thumb:
            return f"""<div class="single" style="{_bounded(thumb)}"><img \
src="{_src(files, thumb)}" alt="{label}" loading="{loading}">\
<span class="tag">{label} only</span></div>"""
    return '<div class="noimage">No picture to show</div>'


def _bounded(thumb: Thumb) -> str:
    """The comparison's size: the column's width, but at most twice the thumbnail's and
    three quarters of the window's height (a tall photo stays whole on screen)."""
    ratio = thumb.width / thumb.height
    return (
        f"aspect-ratio: {thumb.width} / {thumb.height}; "
        f"width: min(100%, {2 * thumb.width}px, calc(75vh * {ratio:.4f}))"
    )


def _src(files: str, thumb: Thumb) -> str:
    return escape(quote(f"{files}/{thumb.name}"))


def _faces(photo: Photo, thumbs: PhotoThumbs, files: str, loading: str) -> str:
    if not photo.faces:
        return "<h3>No face found</h3>" if photo.status in ("ok", "no_face") else ""
    faces = sorted(photo.faces, key=lambda f: (f.identity is None, f.identity or 0.0, f.index))
    tiles = [_face(face, thumbs, files, loading) for face in faces]
    shown = f'<div class="facelist">{"".join(tiles[:FACES_SHOWN])}</div>'
    if len(tiles) > FACES_SHOWN:
        more = count(len(tiles) - FACES_SHOWN, "more face")
        shown += (
            f'<details><summary>{more}</summary><div class="facelist">'
            f"{''.join(tiles[FACES_SHOWN:])}</div></details>"
        )
    order = "worst identity first" if any(f.identity is not None for f in faces) else "as found"
    return f"<h3>{count(len(faces), 'face')}, {order}</h3>{shown}"


def _face(face: Face, thumbs: PhotoThumbs, files: str, loading: str) -> str:
    crops = "".join(
        _crop(thumbs.faces.get((face.index, side)), side, files, loading)
        for side in ("before", "after")
    )
    identity = _score(face.identity)
    meter = ""
    if face.identity is not None:
        width = round(max(0.0, min(1.0, face.identity)) * 100)
        meter = f'<span class="meter"><i style="width: {width}%"></i></span>'
    quality = f"{_score(face.quality_before)} \u2192 {_score(face.quality_after)}"
    state = ""
    if face.restored is False:
        state = f'<p class="notrestored">not restored: {escape(face.why or "not chosen")}</p>'
    flagged = " flagged" if face.flagged else ""
    return f"""<div class="face{flagged}" data-face="{face.index}">
<div class="crops">{crops}</div>
<p class="name">Face {face.index}</p>{state}
<dl><dt>identity</dt><dd><span class="identity">{identity}</span>{meter}</dd>
<dt>quality</dt><dd>{quality}</dd>
<dt>detector</dt><dd>{_score(face.detector)}</dd></dl>
</div>"""


def _crop(thumb: Thumb | None, side: str, files: str, loading: str) -> str:
    if thumb is None:
        return f'<figure><div class="blank"></div>{side}</figure>'
    return (
        f'<figure><img src="{_src(files, thumb)}" width="{thumb.width}" '
        f'height="{thumb.height}" alt="face, {side}" loading="{loading}">{side}</figure>'
    )


def _score(value: float | None) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.2f}"
