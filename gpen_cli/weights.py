"""The weights files: where they live, how they are fetched, checked and installed, and
`load_model`, the one place a weights file is fetched and built (stages receive loaded
modules or paths). The entries themselves are `gpen_cli.registry`'s.

Downloads stream into a hidden temporary file beside the target, hash while streaming, and
only an intact file is renamed into place, so an interrupted or corrupted transfer never
leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shlex
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import platformdirs

from gpen_cli.core import settings
from gpen_cli.core.errors import GpenError, WeightsMissingError
from gpen_cli.core.version import __version__
from gpen_cli.io.atomic import partial_path, remove_partials_of
from gpen_cli.registry import (
    KIND_NAMES,
    MODELS,
    ModelKind,
    ModelSpec,
    check_file_or_name,
    get_spec,
    recognises,
    spec_for_file,
)

__all__ = ["KIND_NAMES", "MODELS", "ModelKind", "ModelSpec", "check_file_or_name", "get_spec"]

logger = logging.getLogger(__name__)
# A download's or an install's temporary file that has not grown for this long was left by
# a process that stopped; a younger one may be another process's transfer in progress.
STALE_PARTIAL_SECONDS = 600

VerifyStatus = Literal["ok", "mismatch", "unknown", "missing"]

WEIGHTS_DIR_ENV = "GPEN_WEIGHTS_DIR"
BASE_URL_ENV = "GPEN_WEIGHTS_BASE_URL"
CHECKSUM_SUFFIX = ".sha256"

_CHUNK_BYTES = 1 << 20
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found for one model: `status` is ok, mismatch, unknown or missing."""

    name: str
    path: Path
    present: bool
    size_bytes: int | None
    status: VerifyStatus
    expected_sha256: str | None
    actual_sha256: str | None
    checksum_source: Literal["registry", "recorded", "structure"] | None
    detail: str = ""
    structure_checked: bool = False  # loaded and compared with its entry's layout

    @property
    def failed(self) -> bool:
        return self.status == "mismatch"

    @property
    def check(self) -> str:
        """The check the file was put to, in words ("" when it is missing, "none" when no
        check is known for it)."""
        if not self.present:
            return ""
        hashed = {"registry": "published sha256", "recorded": "sha256 recorded at download"}
        parts = [hashed[self.checksum_source]] if self.checksum_source in hashed else []
        if self.structure_checked:
            parts.append("layout and values")
        return " + ".join(parts) or "none"


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


def resolve_weights_dir_and_source(explicit: str | Path | None = None) -> tuple[Path, str]:
    """The weights folder and what chose it: `explicit` (--weights-dir), else
    $GPEN_WEIGHTS_DIR, else `weights_dir` in the config file, else the user data folder.

    The current directory plays no part: the same command finds the same files from any
    folder. (A file left in an older place is pointed to by the missing-file message.)
    """
    if explicit is not None:
        return Path(explicit).expanduser().absolute(), "--weights-dir"
    chosen = settings.effective(["weights_dir"])["weights_dir"]
    if chosen.value is not None:
        source = chosen.source
        return Path(chosen.value), source if source.startswith("$") else f"weights_dir in {source}"
    return settings.user_weights_dir(), "the user data folder"


def resolve_weights_dir(explicit: str | Path | None = None) -> Path:
    """--weights-dir, else $GPEN_WEIGHTS_DIR, else the config file's, else the user data folder."""
    return resolve_weights_dir_and_source(explicit)[0]


def older_places() -> list[Path]:
    """Folders never searched where a user may still keep weights (./weights, the checkout's
    weights/, the user cache folder): a missing-file message points to a file found there."""
    checkout = Path(__file__).resolve().parents[1] / "weights"
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


def source_url(spec: ModelSpec) -> str:
    """The registry URL, or the file under $GPEN_WEIGHTS_BASE_URL when a mirror is set."""
    base = os.environ.get(BASE_URL_ENV, "").strip()
    if base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(spec.filename)}"
    return spec.url


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
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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
    folder searched and what chose it, and both ways to put them there."""

    def __init__(
        self, specs: list[ModelSpec], folder: Path, source: str, url: str, reason: str | None
    ) -> None:
        self.specs, self.folder, self.source, self.url, self.reason = (
            specs, folder, source, url, reason
        )  # fmt: skip
        super().__init__(_missing_message(specs, folder, source, url, reason))

    def including(self, specs: Iterable[ModelSpec]) -> MissingFileError:
        """The same error naming `specs` too: every file a command will need, not the first."""
        more = [spec for spec in specs if spec not in self.specs]
        return MissingFileError(self.specs + more, self.folder, self.source, self.url, self.reason)


def _missing_message(
    specs: list[ModelSpec], folder: Path, source: str, url: str, reason: str | None
) -> str:
    """The first file, why it could not be fetched, then every file the command needs that
    is absent, and both ways to put them in the folder (a download, or a copy added)."""
    first = specs[0].filename
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
        message += ", or pass --model PATH"
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
        _record_checksum(final, digest)
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
                while chunk := response.read1(_CHUNK_BYTES):
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


def _record_checksum(path: Path, digest: str) -> None:
    """Write `digest` beside `path` (sha256sum format) so `verify` can detect later damage."""
    target = checksum_path(path)
    partial = partial_path(target)
    try:
        partial.write_text(f"{digest}  {path.name}\n", encoding="ascii")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        logger.warning("could not record the checksum of %s in %s: %s", path, target, exc)


def _recorded_checksum(path: Path) -> str | None:
    """The sha256 recorded beside `path` by an earlier download, if readable and well formed."""
    try:
        fields = checksum_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if fields and _SHA256_PATTERN.fullmatch(fields[0].lower()):
        return fields[0].lower()
    return None


def verify(name: str, weights_dir: Path | None = None) -> VerifyResult:
    """Hash the file for `name` and compare it with the registry's or the recorded sha256."""
    spec = get_spec(name)
    path = weight_path(name, weights_dir)
    if not path.is_file():
        return VerifyResult(name, path, False, None, "missing", spec.sha256, None, None)

    size = path.stat().st_size
    expected = spec.sha256 or _recorded_checksum(path)
    source: Literal["registry", "recorded", "structure"] | None = None
    if expected is not None:
        source = "registry" if spec.sha256 else "recorded"
    actual = sha256_file(path)

    status: VerifyStatus
    if spec.size_bytes is not None and size != spec.size_bytes:
        status, detail = "mismatch", f"{size} bytes, expected {spec.size_bytes}"
    elif expected is not None and actual != expected:
        status, detail = "mismatch", f"sha256 {actual}, expected {expected} ({source})"
    elif spec.kind == "gpen" and spec.sha256 is None:
        # No published hash (a recorded one only proves the file is what was downloaded):
        # check that it is the generator its name says, with finite weights.
        problem = check_gpen_structure(path, spec)
        status, detail = ("mismatch", problem) if problem else ("ok", "")
        source = source or "structure"
        return VerifyResult(name, path, True, size, status, expected, actual, source, detail, True)
    elif expected is None:
        status, detail = "unknown", "no known checksum to compare with"
    else:
        status, detail = "ok", ""
    return VerifyResult(name, path, True, size, status, expected, actual, source, detail)


def check_gpen_structure(path: Path, spec: ModelSpec | None) -> str:
    """Why `path` is not the GPEN generator `spec` describes ("" when it is): it must load
    as tensors of the published layout for that name (any GPEN layout without a spec),
    every value finite."""
    import torch  # here only: listing and hashing weights must not cost the torch import

    from gpen_cli.models.loading import read_gpen

    try:
        state, config = read_gpen(path)
    except GpenError as exc:
        return str(exc).removeprefix(f"{path}: ")
    expected = spec.config if spec is not None else {}
    different = {key: config[key] for key, value in expected.items() if config.get(key) != value}
    if different:
        return f"a GPEN generator, but not {spec.name}: {different} instead of {dict(spec.config)}"
    damaged = [
        key
        for key, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if damaged:
        more = f" (+{len(damaged) - 3} more)" if len(damaged) > 3 else ""
        return f"NaN or infinite values in {', '.join(damaged[:3])}{more}"
    return ""


def check_structure(path: Path, spec: ModelSpec) -> str:
    """Why `path` is not a file of `spec` ("" when it is), for entries without a published
    hash: a GPEN generator must have its name's layout and finite values; any other file
    must build into its module on the CPU (an upsampler at its entry's scale)."""
    if spec.kind == "gpen":
        return check_gpen_structure(path, spec)
    options = {} if spec.kind == "upsampler" else {"device": "cpu"}
    try:
        built = spec.build(path, **options)
    except GpenError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # a builder's own error: the file is not what the entry loads
        return f"does not load as {spec.name} ({type(exc).__name__}: {str(exc)[:160]})"
    scale = spec.config.get("scale")
    if scale is not None and getattr(built, "scale", scale) != scale:
        return f"an x{built.scale} upsampler, not {spec.name} (x{scale})"
    return ""


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
        f"{path}: cannot tell which model this file is (neither its name, its hash nor its "
        f"tensors are one entry's); name it with --as NAME, one of: {', '.join(MODELS)}"
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
        raise GpenError(f"{source}: {final} exists and is another file; pass --force to replace it")
    _copy_into(source, final)
    if spec.sha256 is None:
        _record_checksum(final, sha256_file(final))
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
            while chunk := reader.read(_CHUNK_BYTES):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(partial, final)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise GpenError(f"cannot write {final}: {exc.strerror or exc}") from None
