"""Which folders a batch reads and writes, checked before any work starts.

The input tree is never written to: the output folder may not be the input folder nor
contain it (cleaning stale temporary files would then reach into the input), an output
folder inside the input folder is left out of the scan, and the report may not land in
the input tree either.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gpen_cli.core.errors import GpenError, Phrase
from gpen_cli.io.atomic import is_partial_file
from gpen_cli.stages.save import output_path_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLayout:
    """The input and output folders as the user named them, and what the scan leaves out."""

    input_dir: Path
    output_dir: Path
    excluded: tuple[Path, ...] = ()  # resolved folders under input_dir that are not scanned

    def output_for(self, relative: Path, ext: str) -> Path:
        """Where the input at `relative` (to input_dir) is written: the same place below
        output_dir, with the extension `ext` asks for."""
        return output_path_for(
            self.input_dir / relative,
            self.output_dir / relative.parent,
            ext=ext,
            is_dir_output=True,
        )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan_layout(input_dir: Path, output_dir: Path, report: Path | None = None) -> BatchLayout:
    """Check the folders of a batch; raise GpenError (a usage error) when they cannot work."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.exists():
        raise GpenError(f"{input_dir}: no such folder")
    if not input_dir.is_dir():
        raise GpenError(f"{input_dir}: not a folder (use `gpen restore` for single files)")
    if output_dir.exists() and not output_dir.is_dir():
        raise GpenError(f"-o {output_dir}: exists and is not a folder")
    source, target = input_dir.resolve(), output_dir.resolve()
    if source == target:
        raise GpenError(
            f"-o {output_dir} is the input folder: outputs would replace the inputs; "
            "choose another folder"
        )
    if _inside(source, target):
        raise GpenError(
            f"the input folder {input_dir} is inside the output folder {output_dir}; "
            "choose an output folder outside it"
        )
    excluded: tuple[Path, ...] = ()
    if _inside(target, source):
        excluded = (target,)
        logger.info("output folder %s is inside the input folder: not scanned", output_dir)
    if report is not None:
        written = Path(report).resolve()
        if _inside(written, source) and not _inside(written, target):
            raise GpenError(
                Phrase(
                    f"`report` {report} is inside the input folder {input_dir}, which is "
                    "never written to; put it elsewhere",
                    "report",
                )
            )
    return BatchLayout(input_dir, output_dir, excluded)


def remove_stale_partials(output_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run left in the output tree; returns them."""
    removed: list[Path] = []
    for folder, _, names in os.walk(output_dir):
        for name in names:
            path = Path(folder) / name
            if is_partial_file(path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    logger.warning("cannot remove stale temporary file %s: %s", path, exc)
                    continue
                removed.append(path)
    if removed:
        logger.info("removed %d temporary files left by a stopped run", len(removed))
    return removed
