"""Checked ONNX exports kept in the user cache folder: the onnxruntime runtime exports (and
checks) a network once, not at every start.

A file is looked up by a key of everything that decides its graph: the network's tensors
(as exported: FP32), its kind and configuration, the opset, the versions of gpen-cli, torch
and onnx, and the source of the exporting modules (the version alone does not change while
they are edited). The file's name also carries the sha256 of its bytes, checked on every
read: a truncated or damaged file is removed and exported again, never run. Files are
written atomically, so a run killed while writing leaves only a hidden partial file, never
a file under a name that a later run trusts. Why the user cache folder: docs/design.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import onnx
import platformdirs
import torch
from torch import nn

from gpen_cli.core.errors import GpenError
from gpen_cli.core.version import __version__
from gpen_cli.io.atomic import remove_partials_of, write_atomically
from gpen_cli.models import gpen, ops
from gpen_cli.models.onnx.onnx_file import OPSET

logger = logging.getLogger(__name__)

KEY_CHARS = 32  # of the key's sha256, in the file name
DIGEST_CHARS = 16  # of the bytes' sha256, in the file name
STALE_PARTIAL_S = 3600.0  # a partial file older than this is a killed run's, not a live one's


def cache_folder() -> Path:
    """Where exports are kept: the platform's user cache folder for gpen-cli, "onnx"."""
    return platformdirs.user_cache_path("gpen-cli") / "onnx"


def tensors_digest(module: nn.Module) -> str:
    """sha256 of `module`'s state: every tensor's name, shape and FP32 values (as exported)."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        dtype = torch.float32 if value.is_floating_point() else value.dtype
        tensor = value.detach().to("cpu", dtype).contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def exporter_digest() -> str:
    """sha256 of the source of the modules that build the exported graph."""
    digest = hashlib.sha256()
    sources = sorted(Path(__file__).parent.glob("*.py")) + [Path(gpen.__file__), Path(ops.__file__)]
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(module: nn.Module, description: Mapping[str, object]) -> str:
    """The key of `module` exported as `description` (kind, size, layout...) says."""
    parts = {
        **description,
        "opset": OPSET,
        "gpen-cli": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "exporter": exporter_digest(),
        "tensors": tensors_digest(module),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_CHARS]


def _bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def cached_export(
    label: str, key: str, export: Callable[[], bytes], folder: Path | None = None
) -> bytes:
    """The bytes kept under `label` and `key` when they are whole, else `export()`'s, kept
    for the next run (a folder that cannot be written is said once, and the run goes on)."""
    stem = f"{label}-{key}"
    folder = cache_folder() if folder is None else Path(folder)
    data = _read_whole(folder, stem)
    if data is None:
        data = export()
        _keep(folder / f"{stem}.{_bytes_digest(data)}.onnx", data)
    return data


def _read_whole(folder: Path, stem: str) -> bytes | None:
    """The first file of `stem` whose bytes match the digest in its name; the others removed."""
    for path in sorted(folder.glob(f"{stem}.*.onnx")):
        try:
            data = path.read_bytes()
        except OSError as exc:
            logger.warning("%s: cannot read the kept ONNX export (%s)", path, exc.strerror)
            continue
        if path.name == f"{stem}.{_bytes_digest(data)}.onnx":
            return data
        logger.warning("%s: damaged (its bytes do not match its name); exporting again", path)
        path.unlink(missing_ok=True)
    return None


def _keep(path: Path, data: bytes) -> None:
    """`data` written atomically at `path`, unless another run has just written it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_partials_of(path, older_than=STALE_PARTIAL_S)
        if not path.exists():
            write_atomically(path, data)
    except (OSError, GpenError) as exc:
        if path.exists():  # another run kept the same bytes meanwhile (the name says so)
            return
        logger.warning(
            "cannot keep the ONNX export in %s (%s): exported again next time",
            path.parent,
            getattr(exc, "strerror", None) or exc,
        )
