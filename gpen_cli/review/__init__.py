"""The review page: one static HTML file to look over what a run did, photo by photo.

    read.py     the JSON report (schema 2 or 3) → photos, faces, scores, summary
    thumbs.py   thumbnails of each photo and face, one photo in memory at a time
    page.py     the HTML, escaped, with links relative to the page's folder
    assets.py   its inline style and script (no file, no network needed)

The page `NAME.html` gets its thumbnails in the folder `NAME_files` beside it (as browsers
save a page); the originals are linked where they are. Everything is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpen_cli.core.errors import InputError, OutputError
from gpen_cli.io.atomic import remove_partials_of, write_atomically
from gpen_cli.review.page import GENERATOR, render
from gpen_cli.review.read import ReviewData, read_report, review_data
from gpen_cli.review.thumbs import PhotoThumbs, make_thumbs, remove_stale

__all__ = ["PageWritten", "check_page_path", "read_report", "review_data", "write_review_page"]

PAGE_SUFFIXES = (".html", ".htm")


@dataclass
class PageWritten:
    """What was written: the page, its thumbnails' folder, and the photos it shows."""

    page: Path
    files: Path
    photos: int
    review: int
    missing: list[str]  # files the report names that are not on disk (their cards say so)


def files_folder(page: Path) -> Path:
    """Where the thumbnails of `page` go: `NAME_files` beside `NAME.html`."""
    page = Path(page)
    return page.with_name(f"{page.stem}_files")


def check_page_path(page: Path) -> None:
    """OutputError unless `page` may be written: an .html name, and where a file is there
    already, a page written by this module (any other file is never replaced)."""
    page = Path(page)
    if page.suffix.lower() not in PAGE_SUFFIXES:
        raise OutputError(f"{page}: the review page is HTML; name a .html file")
    if page.is_dir():
        raise OutputError(f"{page}: is a folder; name a .html file")
    if os.path.lexists(page) and (page.is_symlink() or not page.is_file() or not _ours(page)):
        raise OutputError(
            f"{page}: exists and is not a review page gpen wrote; it is never replaced"
        )
    files = files_folder(page)
    if os.path.lexists(files) and not files.is_dir():
        raise OutputError(f"{files}: exists and is not a folder; the thumbnails go there")


def _ours(page: Path) -> bool:
    try:
        with open(page, "rb") as stream:
            head = stream.read(2048).decode("utf-8", errors="replace")
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


def write_review_page(
    data: ReviewData,
    page: Path,
    *,
    title: str,
    on_photo: Callable[[], None] | None = None,
) -> PageWritten:
    """Write the page for `data` (titled `title`, the report's name) and its thumbnails.

    InputError when not one photo of the report can be found (the first is named);
    photos missing among others are said on their cards and in `missing`. `on_photo`
    is called after each photo's thumbnails, for a progress display.
    """
    page = Path(page)
    check_page_path(page)
    missing = [given for photo in data.photos for given in photo.missing]
    if data.photos and all(p.input_path is None and p.output_path is None for p in data.photos):
        raise InputError(f"{data.photos[0].input}: no such file (named by the report)")
    folder = files_folder(page)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    protected = {
        path.resolve()
        for photo in data.photos
        for path in (photo.input_path, photo.output_path)
        if path is not None
    }
    thumbs: dict[int, PhotoThumbs] = {}
    for photo in data.photos:
        thumbs[photo.number] = make_thumbs(photo, folder, protected)
        if on_photo is not None:
            on_photo()
    kept = {t.name for made in thumbs.values() for t in _all(made)}
    remove_stale(folder, kept)
    html = render(data, thumbs, folder.name, page.parent, title)
    remove_partials_of(page)
    write_atomically(page, html.encode("utf-8"), overwrite=True)
    return PageWritten(
        page=page,
        files=folder,
        photos=len(data.photos),
        review=data.counts["review"],
        missing=missing,
    )


def _all(made: PhotoThumbs) -> list:
    return [t for t in (made.before, made.after, *made.faces.values()) if t is not None]
