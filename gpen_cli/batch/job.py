"""What an engine is asked to restore: the photos (a folder tree or a planned list) and how
their outputs are written.

The job's preamble lives here, once for every engine: a folder is locked for the whole run,
the temporary files a killed run left in it are removed, and its tree is planned (a Task
for each photo to restore, an entry for each file that is not); the same plan, walked a
second time, counts the photos for a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

from gpen_cli.batch.layout import BatchLayout, remove_stale_partials
from gpen_cli.batch.lock import output_folder_lock
from gpen_cli.batch.scan import Task, count_work, plan_items
from gpen_cli.pipeline.outputs import OutputOptions
from gpen_cli.pipeline.report import ReportEntry

Item = Task | ReportEntry


@dataclass(frozen=True)
class FolderScan:
    """`gpen batch`'s photos: every photo of a folder tree, mirrored into the output tree."""

    layout: BatchLayout
    recursive: bool = True
    pattern: str | None = None  # only the files whose name (or relative path) matches

    @contextmanager
    def open(self, output: OutputOptions) -> Iterator[Iterable[Item]]:
        """The output folder locked (a second run on it raises GpenError), a killed run's
        temporary files removed, then the plan, walked lazily; outputs that exist are
        skipped as already done unless `output.overwrite`."""
        with output_folder_lock(self.layout.output_dir):
            remove_stale_partials(self.layout.output_dir)
            yield self._plan(output)

    def _plan(self, output: OutputOptions) -> Iterator[Item]:
        return plan_items(
            self.layout,
            ext=output.ext,
            recursive=self.recursive,
            pattern=self.pattern,
            overwrite=output.overwrite,
        )

    def count(self, output: OutputOptions) -> int:
        """The photos a run works on (neither those done already nor files that are not
        images), by a walk of its own: a progress bar's total."""
        return count_work(
            self.layout,
            ext=output.ext,
            recursive=self.recursive,
            pattern=self.pattern,
            overwrite=output.overwrite,
        )


@dataclass(frozen=True)
class GivenItems:
    """Photos planned by the caller (`gpen restore`'s files, a Ray actor's queue, which
    never ends): taken as they are."""

    items: Iterable[Item]

    @contextmanager
    def open(self, output: OutputOptions) -> Iterator[Iterable[Item]]:
        yield self.items


@dataclass(frozen=True)
class PhotoJob:
    """Photos to restore and how their outputs are written: what every engine runs."""

    kind: ClassVar[str] = "photos"
    source: FolderScan | GivenItems
    output: OutputOptions = field(default_factory=OutputOptions)
