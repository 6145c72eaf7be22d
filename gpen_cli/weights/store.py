"""Where the weights files live: the weights folder and what chose it, a model's path in it,
the checksum recorded beside a file, the commands that put files there, and seeded random
stand-ins written as a model's file. Temporary files use the one scheme of `gpen_cli.io.atomic`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import platformdirs

from gpen_cli.core import settings
from gpen_cli.core.errors import GpenError
from gpen_cli.io.atomic import partial_path
from gpen_cli.weights.registry import (
    ModelSpec,
    get_spec,
)

logger = logging.getLogger(__name__)


# A download's or an install's temporary file that has not grown for this long was left by
# a process that stopped; a younger one may be another process's transfer in progress.
STALE_PARTIAL_SECONDS = 600


WEIGHTS_DIR_ENV = "GPEN_WEIGHTS_DIR"


CHECKSUM_SUFFIX = ".sha256"


CHUNK_BYTES = 1 << 20


_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def write_random_weights(spec: ModelSpec, folder: Path, seed: int) -> Path:
    """Save `spec`'s network with seeded random weights as its file in `folder`: a stand-in
    that loads like the real one (the self-test, bench and tests time or check the plumbing
    with it, not the pictures). GpenError when the entry has no `random_init`."""
    if spec.random_init is None:
        raise GpenError(f"{spec.name} has no random initialisation: its real file is needed")
    import torch  # here only: the registry and the rest of this module stay light

    path = Path(folder) / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(spec.random_init(seed).state_dict(), path)
    return path


# What chose the folder when the caller named it: the `weights_dir` setting (the command line
# words it as its flag).
EXPLICIT_SOURCE = "weights_dir"


def resolve_weights_dir_and_source(explicit: str | Path | None = None) -> tuple[Path, str]:
    """The weights folder and what chose it: `explicit` (the weights_dir setting), else
    $GPEN_WEIGHTS_DIR, else `weights_dir` in the config file, else the user data folder.

    The current directory plays no part: the same command finds the same files from any
    folder. (A file left in an older place is pointed to by the missing-file message.)
    """
    if explicit is not None:
        return Path(explicit).expanduser().absolute(), EXPLICIT_SOURCE
    chosen = settings.effective(["weights_dir"])["weights_dir"]
    if chosen.value is not None:
        source = chosen.source
        return Path(chosen.value), source if source.startswith("$") else f"weights_dir in {source}"
    return settings.user_weights_dir(), "the user data folder"


def resolve_weights_dir(explicit: str | Path | None = None) -> Path:
    """`explicit`, else $GPEN_WEIGHTS_DIR, else the config file's, else the user data folder."""
    return resolve_weights_dir_and_source(explicit)[0]


def older_places() -> list[Path]:
    """Folders never searched where a user may still keep weights (./weights, the checkout's
    weights/, the user cache folder): a missing-file message points to a file found there."""
    checkout = Path(__file__).resolve().parents[2] / "weights"
    cache = platformdirs.user_cache_path("gpen-cli") / "weights"
    places = [Path.cwd() / "weights", checkout, cache]
    return [place for index, place in enumerate(places) if place not in places[:index]]


def found_elsewhere(filename: str, folder: Path) -> Path | None:
    """`filename` in one of the `older_places` other than `folder`, or None."""
    for place in older_places():
        if place.absolute() != folder.absolute() and (place / filename).is_file():
            return place / filename
    return None


def weight_path(name: str, weights_dir: Path | None = None) -> Path:
    """Where the file for `name` is (or would be once downloaded)."""
    return resolve_weights_dir(weights_dir) / get_spec(name).filename


def checksum_path(path: Path) -> Path:
    """The file beside `path` recording its sha256 when the registry has none."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def fetch_command(names: Iterable[str], weights_dir: Path, force: bool = False) -> str:
    """The command a user runs to fetch the models `names` into `weights_dir` (the folder
    named only when it is not the one found without it)."""
    flags = " --force" if force else ""
    if Path(weights_dir).absolute() != _default_folder():
        flags += f" --weights-dir {shlex.quote(str(weights_dir))}"
    return f"gpen weights download {' '.join(names)}{flags}"


def add_command(weights_dir: Path, file: str = "FILE") -> str:
    """The command installing a copied file into `weights_dir` (see `fetch_command`)."""
    folder = ""
    if Path(weights_dir).absolute() != _default_folder():
        folder = f" --weights-dir {shlex.quote(str(weights_dir))}"
    return f"gpen weights add {file}{folder}"


def _default_folder() -> Path | None:
    """The folder found with no --weights-dir; None when the settings are unusable."""
    try:
        return resolve_weights_dir(None).absolute()
    except GpenError:
        return None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def record_checksum(path: Path, digest: str) -> None:
    """Write `digest` beside `path` (sha256sum format) so `verify` can detect later damage."""
    target = checksum_path(path)
    partial = partial_path(target)
    try:
        partial.write_text(f"{digest}  {path.name}\n", encoding="ascii")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        logger.warning("could not record the checksum of %s in %s: %s", path, target, exc)


def recorded_checksum(path: Path) -> str | None:
    """The sha256 recorded beside `path` by an earlier download, if readable and well formed."""
    try:
        fields = checksum_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if fields and _SHA256_PATTERN.fullmatch(fields[0].lower()):
        return fields[0].lower()
    return None
