"""Checking a weights file: its size and sha256 against the registry's or the recorded one,
and, for entries without a published hash, its structure (a GPEN generator's layout and finite
values; any other file must build into its module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpen_cli.core.errors import GpenError
from gpen_cli.weights.registry import (
    ModelSpec,
    get_spec,
)
from gpen_cli.weights.store import recorded_checksum, sha256_file, weight_path

logger = logging.getLogger(__name__)


VerifyStatus = Literal["ok", "mismatch", "unknown", "missing"]


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


def verify(name: str, weights_dir: Path | None = None) -> VerifyResult:
    """Hash the file for `name` and compare it with the registry's or the recorded sha256."""
    spec = get_spec(name)
    path = weight_path(name, weights_dir)
    if not path.is_file():
        return VerifyResult(name, path, False, None, "missing", spec.sha256, None, None)

    size = path.stat().st_size
    expected = spec.sha256 or recorded_checksum(path)
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
