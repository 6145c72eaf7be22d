"""What a check reports, and how an exception raised by a check becomes a report."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]
PASS: Status = "PASS"
WARN: Status = "WARN"
FAIL: Status = "FAIL"

NUMPY_FIX = "pip install 'numpy>=1.24,<2.0'"
BUG_FIX = "report a bug with the output of `gpen doctor --json`"

# Import name -> what to pip install when it is missing.
_PIP_NAMES = {
    "cv2": "opencv-python",
    "skimage": "scikit-image",
    "numpy": "'numpy>=1.24,<2.0'",
    "torch": "'torch>=2.4'",
    "face_alignment": "face-alignment",
    "PIL": "Pillow",
}


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's table: `fix` is the one-line remedy ('' when none is needed)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def key(self) -> str:
        """The check's stable machine name: "opencv + numpy" is `opencv_numpy`."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")

    def to_dict(self) -> dict[str, str]:
        """For `gpen doctor --json`: lowercase keys and status, stable across releases."""
        return {"key": self.key, **asdict(self), "status": self.status.lower()}


@dataclass(frozen=True)
class DoctorContext:
    """What the checks are run against: the weights folder and what chose it."""

    weights_dir: Path
    weights_dir_source: str = "given"


def first_line(exc: BaseException) -> str:
    """The exception's first message line, or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as '1.26.4', '2.0.0rc1' or '2.5.1+cu121'."""
    match = re.match(r"\s*(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def numpy_major() -> int | None:
    """The installed numpy's major version, read without importing it (None if absent)."""
    try:
        return int(importlib.metadata.version("numpy").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def pip_install(module: str) -> str:
    """The command installing the distribution that provides the top-level `module`."""
    return f"pip install {_PIP_NAMES.get(module, module)}"


def _failing_package(exc: BaseException) -> str | None:
    """The top-level package whose code raised `exc` (the deepest frame outside gpen_cli)."""
    package = None
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        if module and module not in ("gpen_cli", "importlib", "__main__"):
            package = module
        frame = frame.tb_next
    return package


def failure_from_exception(name: str, exc: Exception) -> CheckResult:
    """A FAIL for a check that raised: a missing package says what to install; an import
    that breaks under numpy 2 says to pin numpy."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        module = exc.name.split(".")[0]
        detail = f"{module} is not installed ({first_line(exc)})"
        return CheckResult(name, FAIL, detail, pip_install(module))
    package = _failing_package(exc) if isinstance(exc, ImportError) else None
    where = f" in {package}" if package else ""
    detail = f"{type(exc).__name__}{where}: {first_line(exc)}"
    if isinstance(exc, ImportError):
        major = numpy_major()
        if major is not None and major >= 2:
            return CheckResult(name, FAIL, f"import failed under numpy 2: {detail}", NUMPY_FIX)
        reinstall = _PIP_NAMES.get(package or "", package)
        fix = f"pip install --force-reinstall {reinstall}" if reinstall else BUG_FIX
        return CheckResult(name, FAIL, f"import failed: {detail}", fix)
    return CheckResult(name, FAIL, f"the check raised {detail}", BUG_FIX)
