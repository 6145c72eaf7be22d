"""The walk of the input tree and what to do with each file found.

The walk is lazy (one folder listed at a time, so a huge tree costs no memory) and
deterministic: in each folder its files in name order, then its sub-folders in name order.
Hidden files and folders (our own ".partial" temporary files among them) are not inputs;
symbolic links to folders are not followed, so a link cycle cannot trap the walk.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gpen_cli.batch.layout import BatchLayout
from gpen_cli.core.confine import check_inside
from gpen_cli.core.errors import OutputError, Phrase, message_of
from gpen_cli.io.atomic import name_too_long
from gpen_cli.pipeline.report import ReportEntry
from gpen_cli.stages.load import READABLE_EXTENSIONS

ALREADY_DONE = "already done"  # the `error` text of a skip with reason "already_done"


@dataclass(frozen=True)
class Task:
    """One photo to restore, and the folder the user named for its outputs (by default the
    output's own folder): everything written for it stays below that folder."""

    source: Path
    output: Path
    root: Path | None = None

    @property
    def output_root(self) -> Path:
        return self.root if self.root is not None else self.output.parent


@dataclass(frozen=True)
class Found:
    """A file of the input tree, relative to it; `error` when its folder cannot be listed."""

    relative: Path
    error: str | None = None


def walk_tree(
    root: Path, *, recursive: bool = True, excluded: Collection[Path] = ()
) -> Iterator[Found]:
    """The visible files under `root`, relative to it, in the order of the module docstring."""
    excluded_set = {Path(path) for path in excluded}

    def walk(folder: Path, relative: Path) -> Iterator[Found]:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(
                    (entry for entry in listing if not entry.name.startswith(".")),
                    key=lambda entry: entry.name,
                )
        except OSError as exc:
            yield Found(relative, f"{folder}: cannot list this folder ({exc.strerror or exc})")
            return
        folders = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry)
                elif entry.is_file():
                    yield Found(relative / entry.name)
            except OSError:  # vanished or unreadable entry: not an input
                continue
        if not recursive:
            return
        for entry in folders:
            path = Path(entry.path)
            if excluded_set and path.resolve() in excluded_set:
                continue
            yield from walk(path, relative / entry.name)

    yield from walk(Path(root), Path())


def matches(relative: Path, pattern: str | None) -> bool:
    """Whether `relative` is selected by --glob: the file name, or the whole relative path
    when the pattern holds a '/'; case-insensitive (photos come as .JPG as often as .jpg)."""
    if not pattern:
        return True
    subject = PurePosixPath(relative).as_posix() if "/" in pattern else relative.name
    return fnmatch.fnmatchcase(subject.lower(), pattern.lower())


def plan_items(
    layout: BatchLayout,
    *,
    ext: str = "same",
    recursive: bool = True,
    pattern: str | None = None,
    overwrite: bool = False,
) -> Iterator[Task | ReportEntry]:
    """A Task for each photo to restore, a finished entry for each file that is not."""
    claimed: dict[Path, Path] = {}  # output -> input, within the current folder
    current_folder: Path | None = None
    for found in walk_tree(layout.input_dir, recursive=recursive, excluded=layout.excluded):
        source = layout.input_dir / found.relative
        if found.error is not None:
            yield ReportEntry(input=str(source), output=None, status="failed", error=found.error)
            continue
        if not matches(found.relative, pattern):
            continue
        suffix = found.relative.suffix.lower()
        if suffix not in READABLE_EXTENSIONS:
            message = f"{source}: not an image ({suffix or 'no'} extension)"
            yield ReportEntry(
                input=str(source),
                output=None,
                status="skipped",
                error=message,
                reason="not_an_image",
            )
            continue
        output = layout.output_for(found.relative, ext)
        # A folder's files come together, so output clashes only need checking within one.
        if found.relative.parent != current_folder:
            current_folder, claimed = found.relative.parent, {}
        if output in claimed:
            error = Phrase(
                f"{claimed[output]} and {source} would both be written to {output}; "
                "rename one or use `ext` same",
                "ext",
            )
            yield ReportEntry(input=str(source), output=None, status="failed", error=error)
            continue
        claimed[output] = source
        try:  # a link in the output tree would make "exists" speak of another file
            check_inside(output, layout.output_dir)
        except OutputError as exc:
            yield ReportEntry(
                input=str(source), output=None, status="failed", error=message_of(exc)
            )
            continue
        too_long = name_too_long(output)
        if too_long is not None:
            yield ReportEntry(input=str(source), output=None, status="failed", error=too_long)
            continue
        if output.exists() and not overwrite:
            yield ReportEntry(
                input=str(source),
                output=str(output),
                status="skipped",
                error=ALREADY_DONE,
                reason="already_done",
            )
            continue
        yield Task(source, output, layout.output_dir)


def count_work(
    layout: BatchLayout,
    *,
    ext: str = "same",
    recursive: bool = True,
    pattern: str | None = None,
    overwrite: bool = False,
) -> int:
    """How many of the entries `plan_items` yields are not skipped: the photos a run works
    on (and the few it fails at once), for the progress bar, by a walk of its own."""
    items = plan_items(layout, ext=ext, recursive=recursive, pattern=pattern, overwrite=overwrite)
    return sum(
        1 for item in items if not (isinstance(item, ReportEntry) and item.status == "skipped")
    )
