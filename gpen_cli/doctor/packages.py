"""numpy and the compiled packages built against it (OpenCV, numba, torch).

A numpy 2 install under packages compiled for numpy 1 either fails at import or, worse,
imports and computes wrong numbers; these checks exercise each bridge once.
"""

from __future__ import annotations

from gpen_cli.doctor.result import (
    FAIL,
    NUMPY_FIX,
    PASS,
    CheckResult,
    DoctorContext,
    first_line,
    release,
)

NUMPY_VERSION = "numpy version"
OPENCV = "opencv + numpy"
NUMBA = "numba + numpy"
TORCH_BRIDGE = "torch + numpy"

_NUMPY_MIN = (1, 24)
_NUMPY_BELOW = (2, 0)


def check_numpy_version(version: str) -> CheckResult:
    """PASS when `version` satisfies the project's numpy>=1.24,<2.0, else FAIL with the pin."""
    parsed = release(version)
    if parsed is None:
        return CheckResult(NUMPY_VERSION, FAIL, f"cannot read numpy version {version!r}", NUMPY_FIX)
    if parsed >= _NUMPY_BELOW:
        return CheckResult(
            NUMPY_VERSION,
            FAIL,
            f"numpy {version} is installed; gpen-cli needs numpy < 2.0 (packages compiled "
            "for numpy 1 fail to import or compute wrong numbers under 2)",
            NUMPY_FIX,
        )
    if parsed < _NUMPY_MIN:
        return CheckResult(
            NUMPY_VERSION, FAIL, f"numpy {version} is older than the 1.24 gpen-cli needs", NUMPY_FIX
        )
    return CheckResult(NUMPY_VERSION, PASS, f"numpy {version} (needs >=1.24,<2.0)")


def numpy_version(context: DoctorContext) -> CheckResult:
    import numpy

    return check_numpy_version(numpy.__version__)


def opencv_numpy(context: DoctorContext) -> CheckResult:
    """OpenCV reads and writes numpy arrays: a colour swap and a PNG round trip are exact."""
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    swapped = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    encoded_ok, buffer = cv2.imencode(".png", image)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if encoded_ok else None
    if not np.array_equal(swapped, image[..., ::-1]) or not np.array_equal(decoded, image):
        return CheckResult(
            OPENCV,
            FAIL,
            f"OpenCV {cv2.__version__} returns wrong pixels for numpy arrays",
            "pip install --force-reinstall opencv-python 'numpy>=1.24,<2.0'",
        )
    return CheckResult(OPENCV, PASS, f"OpenCV {cv2.__version__}: array round trips exact")


def numba_numpy(context: DoctorContext) -> CheckResult:
    """facexlib imports numba (its tracker) whenever the RetinaFace detector loads."""
    import numba
    import numpy as np

    @numba.njit(cache=False)
    def _total(values):  # compiled by numba against the installed numpy
        acc = 0.0
        for value in values:
            acc += value
        return acc

    values = np.arange(1, 101, dtype=np.float64)
    if _total(values) != 5050.0:
        return CheckResult(
            NUMBA,
            FAIL,
            f"numba {numba.__version__} computes a wrong sum of a numpy array",
            NUMPY_FIX,
        )
    import facexlib

    return CheckResult(
        NUMBA,
        PASS,
        f"numba {numba.__version__} compiles against numpy; "
        f"facexlib {facexlib.__version__} imports",
    )


def torch_numpy(context: DoctorContext) -> CheckResult:
    """torch.from_numpy / .numpy() share memory and keep dtypes and values."""
    import numpy as np
    import torch

    try:
        for dtype in (np.float64, np.float32, np.uint8):
            array = np.arange(12).reshape(3, 4).astype(dtype)
            tensor = torch.from_numpy(array)
            tensor[0, 0] = 7  # shared memory: the array must see the write
            back = tensor.numpy()
            if back.dtype != dtype or array[0, 0] != 7 or not np.array_equal(back, array):
                return CheckResult(
                    TORCH_BRIDGE,
                    FAIL,
                    f"torch <-> numpy round trip of {np.dtype(dtype)} is wrong",
                    NUMPY_FIX,
                )
    except RuntimeError as exc:  # "Numpy is not available": torch built for another numpy
        return CheckResult(
            TORCH_BRIDGE, FAIL, f"torch {torch.__version__}: {first_line(exc)}", NUMPY_FIX
        )
    return CheckResult(
        TORCH_BRIDGE, PASS, f"torch {torch.__version__}: from_numpy/.numpy() round trips exact"
    )
