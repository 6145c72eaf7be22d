"""`gpen review`: a page to look over a report's photos in a browser; and the hook that
writes it at the end of `gpen batch --review-page`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpen_cli.cli import options as opt
from gpen_cli.cli.common import console, err_console, fail, one_line_errors, say
from gpen_cli.core.errors import EXIT_OK, EXIT_SOME_FAILED, GpenError, joined, message_of
from gpen_cli.core.words import count

if TYPE_CHECKING:
    from gpen_cli.pipeline.report import ReportEntry
    from gpen_cli.review import ReviewData

PAGE_NAME = "review.html"  # the default page: beside the report, or in batch's output folder

ReviewPageOption = Annotated[
    bool,
    typer.Option(
        "--review-page",
        help=f"At the end, also write {PAGE_NAME} in OUTPUT: each photo before and after, "
        "its faces and scores (see `gpen review`).",
        rich_help_panel=opt.OUTPUT,
    ),
]


@one_line_errors
def review(
    report: Annotated[
        Path, typer.Argument(help="JSON report of gpen restore or batch.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help=f"The page (.html). Default: {PAGE_NAME} beside the report.",
        ),
    ] = None,
    quiet: opt.QuietOption = False,
) -> None:
    """Write one HTML page to look over a report's photos in a browser.

    $ gpen review report.json -o review.html

    $ gpen review restored/report.json     # restored/review.html

    Each photo has a before/after slider to drag and its faces with
    their identity and quality scores (--score), worst identity first;
    a toggle, or opening review.html#review, shows only the photos to
    review. The page needs no server and no network: thumbnails go in
    the folder review_files beside it, the photos are linked where they
    are (keep the page and that folder together).

    Exit codes: 0 written; 1 written, but files the report names are
    missing (their cards say so); 2 the report cannot be read, none of
    its photos is there, or the page cannot be written.
    """
    from gpen_cli.review import check_page_path, read_report

    page = output if output is not None else report.with_name(PAGE_NAME)
    check_page_path(page)
    _check_folder(page)
    data = read_report(report)
    raise typer.Exit(write_page(data, page, f"Report: {report}", quiet))


def _check_folder(page: Path) -> None:
    from gpen_cli.core.preflight import check_writable_folder

    check_writable_folder(page.parent, "-o", page)


def write_page(data: ReviewData, page: Path, title: str, quiet: bool) -> int:
    """Write the page under a progress bar and say where it is; the exit code (1 when files
    the report names are missing)."""
    from gpen_cli.cli.runs import photo_progress
    from gpen_cli.review import write_review_page

    progress = photo_progress(quiet or not err_console.is_terminal)  # no stray line in a log
    with progress:
        task = progress.add_task("Review page", total=len(data.photos))
        written = write_review_page(
            data, page, title=title, on_photo=lambda: progress.advance(task)
        )
    if written.missing:
        say(
            "[yellow]warning:[/]",
            f"{count(len(written.missing), 'file')} the report names not found, e.g. "
            f"{written.missing[0]}; their cards say so",
        )
    if not quiet:
        to_review = f", {written.review} to review" if written.review else ""
        console.print(
            f"review page: {page} ({count(written.photos, 'photo')}{to_review})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return EXIT_SOME_FAILED if written.missing else EXIT_OK


def check_batch_page(page: Path | None) -> None:
    """For `gpen batch --review-page`: refused before any model loads when it cannot be
    written."""
    if page is None:
        return
    from gpen_cli.review import check_page_path

    check_page_path(page)
    _check_folder(page)


def page_after_batch(
    entries: list[ReportEntry], page: Path, title: str, quiet: bool, done: typer.Exit
) -> typer.Exit:
    """Write the page of a finished batch; the Exit to raise (1 where the page failed)."""
    from gpen_cli.pipeline.report import report_payload
    from gpen_cli.review import review_data

    try:
        code = write_page(review_data(report_payload(entries)), page, title, quiet)
    except GpenError as exc:
        fail(joined("review page not written: ", message_of(exc)))
        code = EXIT_SOME_FAILED
    return typer.Exit(max(done.exit_code, code))


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(review)
