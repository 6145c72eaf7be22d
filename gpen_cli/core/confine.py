"""Every file a run writes stays inside the folder the user named for it.

A symbolic link inside an output tree (`out/sub -> ../photos`, `out/gpen-compare -> /etc`)
would lead a write, or a "this output already exists" check, to wherever it points: onto an
input, or outside the output folder. The folder the user named may itself be a link (they
chose it); below it, no folder on the way and no file written may be one.

Kept free of heavy imports: the CLI loads it at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from gpen_cli.core.errors import OutputError


def check_inside(path: Path, root: Path) -> None:
    """OutputError unless `path` lies below `root` through no symbolic link.

    `root` is the folder the user named (followed if it is a link); the components of `path`
    below it that exist, the file itself included, must be real folders and a regular file.
    A `path` that is not below `root` at all is refused too.
    """
    path, root = Path(path), Path(root)
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise OutputError(f"{path}: not inside the output folder {root}; not written") from None
    current = root
    for part in relative.parts:
        if part in ("..", "."):
            raise OutputError(f"{path}: leaves the output folder {root}; not written")
        current = current / part
        if os.path.islink(current):
            what = "is a symbolic link" if current == path else f"{current} is a symbolic link"
            raise OutputError(
                f"{path}: {what}; gpen follows no link inside the output folder {root}, so "
                "nothing was written through it"
            )
