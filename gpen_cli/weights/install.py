"""Installing a copied weights file (`gpen weights add`): which registry entry it is (by name,
hash or tensors), the check it passes, and a copy renamed into place only once complete.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gpen_cli.core.errors import GpenError, Phrase
from gpen_cli.io.atomic import partial_path, remove_partials_of
from gpen_cli.weights.registry import (
    MODELS,
    ModelSpec,
    get_spec,
    recognises,
)
from gpen_cli.weights.store import (
    CHUNK_BYTES,
    STALE_PARTIAL_SECONDS,
    record_checksum,
    resolve_weights_dir,
    sha256_file,
)
from gpen_cli.weights.verify import check_structure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Added:
    """What `add` did with one file: the entry it is, where it went, the check it passed."""

    spec: ModelSpec
    path: Path
    check: str
    already: bool = False


def identify(path: Path, name: str | None = None) -> ModelSpec:
    """The registry entry a file is: `name` when given, else the entry whose file name or
    published hash it has, else the GPEN generator its tensors' layout is."""
    if name is not None:
        return get_spec(name)
    by_filename = {spec.filename.lower(): spec for spec in MODELS.values()}
    if path.name.lower() in by_filename:
        return by_filename[path.name.lower()]
    size = path.stat().st_size
    hashed = [spec for spec in MODELS.values() if spec.sha256 and spec.size_bytes == size]
    digest = sha256_file(path) if hashed else None
    for spec in hashed:
        if spec.sha256 == digest:
            return spec
    layout = _gpen_layout(path)
    for spec in MODELS.values():
        if spec.kind == "gpen" and layout is not None and dict(spec.config) == layout:
            return spec
    recognised = [spec for spec in MODELS.values() if recognises(spec, path)]
    if len(recognised) == 1:
        return recognised[0]
    raise GpenError(
        Phrase(
            f"{path}: cannot tell which model this file is (neither its name, its hash nor "
            f"its tensors are one entry's); name it with `name`, one of: {', '.join(MODELS)}",
            "name",
        )
    )


def _gpen_layout(path: Path) -> dict | None:
    """The GPEN configuration of the file's tensors, or None when it is no GPEN generator."""
    from gpen_cli.models.loading import read_gpen

    try:
        _, config = read_gpen(path)
    except GpenError:
        return None
    return {key: config.get(key) for key in ("size", "channel_multiplier", "narrow")}


def add(source: Path, weights_dir: Path | None = None, name: str | None = None,
        force: bool = False) -> Added:  # fmt: skip
    """Check `source` and copy it into the weights folder under its registry file name.

    The check is the published size and sha256 where the registry has them, the file's
    structure otherwise (`check_structure`); a file that fails is refused and nothing is
    written. The copy lands under its final name only once complete (as a download does),
    with its sha256 recorded beside it when none is published; `source` is only read.
    """
    source = Path(source)
    if not source.is_file():
        what = "a folder, not a file" if source.is_dir() else "no such file"
        raise GpenError(f"{source}: {what}")
    spec = identify(source, name)
    check = _check_for_add(source, spec)
    folder = resolve_weights_dir(weights_dir)
    final = folder / spec.filename
    if final.is_file() and (final.samefile(source) or sha256_file(final) == sha256_file(source)):
        return Added(spec, final, check, already=True)
    if final.exists() and not force:
        raise GpenError(
            Phrase(
                f"{source}: {final} exists and is another file; pass `force` to replace it",
                "force",
            )
        )
    _copy_into(source, final)
    if spec.sha256 is None:
        record_checksum(final, sha256_file(final))
    return Added(spec, final, check)


def _check_for_add(source: Path, spec: ModelSpec) -> str:
    """Which check `source` passed as a file of `spec`; GpenError saying why when none."""
    size = source.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        raise GpenError(f"{source}: {size} bytes, but {spec.name} has {spec.size_bytes}")
    if spec.sha256 is not None:
        actual = sha256_file(source)
        if actual != spec.sha256:
            raise GpenError(
                f"{source}: sha256 {actual} is not {spec.name}'s published {spec.sha256}"
            )
        return "published sha256"
    problem = check_structure(source, spec)
    if problem:
        raise GpenError(f"{source}: not {spec.name}: {problem}")
    return "layout and values" if spec.kind == "gpen" else f"loads as {spec.name}"


def _copy_into(source: Path, final: Path) -> None:
    """Copy `source` to `final` through a hidden temporary file renamed into place."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_partials_of(final, older_than=STALE_PARTIAL_SECONDS)
        partial = partial_path(final)
    except OSError as exc:
        raise GpenError(f"cannot write in {final.parent}: {exc.strerror or exc}") from None
    try:
        with open(source, "rb") as reader, open(partial, "xb") as writer:
            while chunk := reader.read(CHUNK_BYTES):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(partial, final)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise GpenError(f"cannot write {final}: {exc.strerror or exc}") from None
