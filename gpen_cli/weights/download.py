"""Fetching the weights: `ensure_weight` (the local file, downloaded when absent), `load_model`
(the one place a weights file is fetched and built: stages receive loaded modules or paths),
and the missing-file error naming every file a command needs.

Downloads stream into a hidden temporary file beside the target, hash while streaming, and
only an intact file is renamed into place, so an interrupted or corrupted transfer never
leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from gpen_cli.core.errors import GpenError, WeightsMissingError
from gpen_cli.core.version import __version__
from gpen_cli.io.atomic import partial_path, remove_partials_of
from gpen_cli.weights.registry import (
    ModelKind,
    ModelSpec,
    get_spec,
    spec_for_file,
)
from gpen_cli.weights.store import (
    CHUNK_BYTES,
    EXPLICIT_SOURCE,
    STALE_PARTIAL_SECONDS,
    add_command,
    fetch_command,
    found_elsewhere,
    record_checksum,
    resolve_weights_dir,
    resolve_weights_dir_and_source,
)

logger = logging.getLogger(__name__)


BASE_URL_ENV = "GPEN_WEIGHTS_BASE_URL"


class DownloadError(GpenError):
    """A download failed; `reason` is the short cause, the message names file and URL."""

    def __init__(self, filename: str, url: str, reason: str) -> None:
        super().__init__(f"download of {filename} from {url} failed: {reason}")
        self.filename = filename
        self.url = url
        self.reason = reason


def load_model(
    name_or_path: str | Path, kind: ModelKind, weights_dir: Path | None = None, **options: Any
) -> Any:
    """The module a registry name (fetched when absent) or a checkpoint file holds.

    A file is built by the entry of `kind` it is (`spec_for_file`: GPEN generators infer
    their configuration from the tensors, SR networks go through spandrel).
    """
    if Path(name_or_path).is_file():
        return spec_for_file(Path(name_or_path), kind).build(Path(name_or_path), **options)
    spec = get_spec(str(name_or_path), kind)
    return spec.build(ensure_weight(spec.name, weights_dir), **options)


def source_url(spec: ModelSpec) -> str:
    """The registry URL, or the file under $GPEN_WEIGHTS_BASE_URL when a mirror is set."""
    base = os.environ.get(BASE_URL_ENV, "").strip()
    if base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(spec.filename)}"
    return spec.url


def ensure_weight(
    name: str,
    weights_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The local path of `name`, downloading it first when absent.

    A present file is trusted without re-hashing (that is what `gpen weights verify` is for);
    only its size is compared when the registry knows it, which costs one stat.
    """
    spec = get_spec(name)
    folder, source = resolve_weights_dir_and_source(weights_dir)
    if folder.exists() and not folder.is_dir():  # no weights file can be in it, or go there
        raise WeightsMissingError(
            f"{spec.filename}: the weights folder {folder} ({source}) is a file, not a "
            "folder; point it at a folder"
        )
    path = folder / spec.filename
    if path.is_file():
        size = path.stat().st_size
        if spec.size_bytes is not None and size != spec.size_bytes:
            raise GpenError(
                f"{path} has {size} bytes, expected {spec.size_bytes}: it is incomplete or "
                f"another file. Fetch it again with: {fetch_command([name], folder, force=True)}"
            )
        return path
    url = source_url(spec)
    if not download:
        raise MissingFileError([spec], folder, source, url, None)
    try:
        return _fetch(spec, folder, progress=progress, url=url)
    except DownloadError as exc:
        raise MissingFileError([spec], folder, source, url, exc.reason) from None


class MissingFileError(WeightsMissingError):
    """Files a command needs are not in the weights folder, and the first could not be
    fetched (`reason`; None when downloads are off). The message names every file, the
    folder searched and what chose it, and both ways to put them there. Settings are named
    as `name` words them: by their own name here, by their flag on the command line."""

    def __init__(
        self,
        specs: list[ModelSpec],
        folder: Path,
        source: str,
        url: str,
        reason: str | None,
        name: Callable[[str], str] = str,
    ) -> None:
        self.specs, self.folder, self.source, self.url, self.reason, self.name = (
            specs, folder, source, url, reason, name
        )  # fmt: skip
        super().__init__(_missing_message(specs, folder, source, url, reason, name))

    def including(self, specs: Iterable[ModelSpec]) -> MissingFileError:
        """The same error naming `specs` too: every file a command will need, not the first."""
        more = [spec for spec in specs if spec not in self.specs]
        return MissingFileError(
            self.specs + more, self.folder, self.source, self.url, self.reason, self.name
        )

    def worded(self, name: Callable[[str], str]) -> MissingFileError:
        """The same error with each setting named by `name` (the command line's flags)."""
        return MissingFileError(self.specs, self.folder, self.source, self.url, self.reason, name)


def _missing_message(
    specs: list[ModelSpec],
    folder: Path,
    source: str,
    url: str,
    reason: str | None,
    name: Callable[[str], str],
) -> str:
    """The first file, why it could not be fetched, then every file the command needs that
    is absent, and both ways to put them in the folder (a download, or a copy added)."""
    first = specs[0].filename
    source = name(source) if source == EXPLICIT_SOURCE else source
    if reason is None:
        message = f"{first} not found in {folder} ({source}), and downloads are off."
    else:
        message = (
            f"{first} not found in {folder} ({source}), and its download from {url} "
            f"failed ({reason})."
        )
    if len(specs) > 1:
        message += f" Missing there too: {', '.join(spec.filename for spec in specs[1:])}."
    them = "it" if len(specs) == 1 else "them"
    message += (
        f" Fetch {them} with: {fetch_command([spec.name for spec in specs], folder)}; or copy "
        f"{them} from another machine and install each with: {add_command(folder)}"
    )
    if any(spec.kind == "gpen" for spec in specs):
        message += f", or point {name('model')} at a checkpoint file"
    for spec in specs:
        older = found_elsewhere(spec.filename, folder)
        if older is not None:
            message += f". {spec.filename} is in {older.parent}: {add_command(folder, str(older))}"
    return message + "."


def needed_specs(named: Mapping[str, str], weights_dir: Path | None) -> list[ModelSpec]:
    """The registry entries among `named` (kind → name or file) absent from the folder."""
    folder = resolve_weights_dir(weights_dir)
    specs = [get_spec(name, kind) for kind, name in named.items() if not Path(name).is_file()]
    return [spec for spec in specs if not (folder / spec.filename).is_file()]


def download(
    spec: ModelSpec,
    dest_dir: Path,
    progress: bool = True,
    timeout: float = 30.0,
    url: str | None = None,
) -> Path:
    """Fetch `spec` into `dest_dir` atomically and check it; returns the final path.

    Any failure raises `DownloadError` (a `GpenError`) saying why, and leaves nothing behind:
    no file under the final name, no temporary file. Without a registry sha256, the computed
    one is recorded beside the file for `verify`.
    """
    url = url or source_url(spec)
    final = dest_dir / spec.filename

    def failure(reason: str) -> DownloadError:
        return DownloadError(spec.filename, url, reason)

    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        remove_partials_of(final, older_than=STALE_PARTIAL_SECONDS)
        partial = partial_path(final)
        handle = open(partial, "xb")  # closed by the `with` below
    except OSError as exc:
        if dest_dir.exists() and not dest_dir.is_dir():
            raise failure(f"the weights folder {dest_dir} is a file, not a folder") from None
        raise failure(f"cannot write in {dest_dir}: {exc.strerror or exc}") from None

    logger.info("downloading %s from %s", spec.filename, url)
    completed = False
    try:
        with handle:
            received, digest = _stream(url, handle, spec.filename, timeout, progress, failure)
            handle.flush()
            os.fsync(handle.fileno())
        if spec.size_bytes is not None and received != spec.size_bytes:
            raise failure(f"size mismatch: expected {spec.size_bytes} bytes, got {received}")
        if spec.sha256 is not None and digest != spec.sha256:
            raise failure(
                f"checksum mismatch: expected sha256 {spec.sha256}, got {digest}; "
                "the file was discarded"
            )
        os.replace(partial, final)
        completed = True
    except OSError as exc:
        raise failure(f"cannot write {final}: {exc.strerror or exc}") from None
    finally:
        if not completed:
            partial.unlink(missing_ok=True)

    if spec.sha256 is None:
        record_checksum(final, digest)
    logger.info("saved %s (%d bytes, sha256 %s)", final, received, digest)
    return final


# `ensure_weight` takes a `download` flag that hides the function of the same name.
_fetch = download


def _stream(
    url: str,
    handle: BinaryIO,
    label: str,
    timeout: float,
    progress: bool,
    failure: Callable[[str], DownloadError],
) -> tuple[int, str]:
    """Copy the body at `url` into `handle`; returns (bytes received, sha256 hex)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"gpen-cli/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    expected: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            with _progress_bar(label, expected, progress) as advance:
                while chunk := response.read1(CHUNK_BYTES):
                    digest.update(chunk)
                    try:
                        handle.write(chunk)
                    except OSError as exc:
                        raise failure(f"cannot write {handle.name}: {exc.strerror}") from None
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as exc:
        raise failure(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise failure(f"no answer within {timeout:g} s") from None
        host = urllib.parse.urlsplit(url).netloc
        why = getattr(exc.reason, "strerror", None) or str(exc.reason)
        raise failure(f"cannot reach {host}: {why}") from None
    except ValueError as exc:  # a malformed URL, e.g. a mirror base URL without http(s)://
        raise failure(f"invalid URL ({exc})") from None
    except http.client.IncompleteRead as exc:
        raise failure(_cut_reason(received + len(exc.partial), expected)) from None
    except TimeoutError:
        raise failure(f"connection stalled for {timeout:g} s after {received} bytes") from None
    except (OSError, http.client.HTTPException) as exc:
        raise failure(f"{_cut_reason(received, expected)} ({exc})") from None
    if expected is not None and received != expected:
        raise failure(_cut_reason(received, expected))
    return received, digest.hexdigest()


def _cut_reason(received: int, expected: int | None) -> str:
    total = f" of {expected}" if expected is not None else ""
    return f"connection cut after {received}{total} bytes"


@contextmanager
def _progress_bar(label: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], Any]]:
    """Yield a callable advancing a rich progress bar on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda _count: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)
