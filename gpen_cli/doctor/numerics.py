"""Numeric health of the geometry: the silent precision failures a numpy/torch mismatch causes.

Each check runs a computation whose exact or near-exact answer is known: alignment of
landmarks placed by a known similarity, OpenCV warps and their inverses, and torch's
identity resampling.
"""

from __future__ import annotations

import math

from gpen_cli.doctor.result import FAIL, NUMPY_FIX, PASS, CheckResult, DoctorContext

ALIGNMENT = "alignment dtypes"
WARP = "warp round trip"
GRID_SAMPLE = "grid_sample identity"

TORCH_REINSTALL_FIX = (
    "reinstall torch for this platform (https://pytorch.org/get-started/locally/) with numpy<2"
)

_CROP_SIZE = 512
_TRANSFORM_TOLERANCE = 1e-3  # matrix entries; float32 landmarks allow ~1e-5
_WARP_MAX_ERROR = 0.05  # smooth image in [0, 1], bilinear there and back
_WARP_MEAN_ERROR = 0.01
# Sizes of 2^k + 1 make every identity-grid coordinate exactly representable, so resampling
# at them must reproduce the input bit for bit.
_GRID_HEIGHT, _GRID_WIDTH = 33, 65


def _known_similarity(angle_deg: float, scale: float, shift: tuple[float, float]):
    import numpy as np

    angle = math.radians(angle_deg)
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[cos, -sin, shift[0]], [sin, cos, shift[1]]], dtype=np.float64)


def alignment_dtypes(context: DoctorContext) -> CheckResult:
    """align_face on landmarks placed by a known transform recovers it, in finite float64."""
    import numpy as np

    from gpen_cli.stages.align import align_face, reference_points

    crop_to_image = _known_similarity(17.0, 0.45, (130.5, 77.25))
    template = reference_points(_CROP_SIZE)
    landmarks = (template @ crop_to_image[:, :2].T + crop_to_image[:, 2]).astype(np.float32)
    alignment = align_face(landmarks, _CROP_SIZE)

    problems = []
    for label, array in (
        ("reference points", template),
        ("forward", alignment.forward),
        ("inverse", alignment.inverse),
    ):
        if array.dtype != np.float64:
            problems.append(f"{label} is {array.dtype}, not float64")
        if not np.isfinite(array).all():
            problems.append(f"{label} has non-finite values")
    error = float(np.abs(alignment.inverse - crop_to_image).max())
    if not error <= _TRANSFORM_TOLERANCE:
        problems.append(
            f"recovered transform off by {error:.3g} (tolerance {_TRANSFORM_TOLERANCE:g})"
        )
    mapped = landmarks.astype(np.float64) @ alignment.forward[:, :2].T + alignment.forward[:, 2]
    residual = float(np.abs(mapped - template).max())
    if not residual <= _TRANSFORM_TOLERANCE * _CROP_SIZE:
        problems.append(f"landmarks land {residual:.3g} px from the template")
    if problems:
        return CheckResult(ALIGNMENT, FAIL, "; ".join(problems), NUMPY_FIX)
    return CheckResult(
        ALIGNMENT,
        PASS,
        f"float64 matrices, finite; known transform recovered to {error:.1e}, "
        f"landmarks within {residual:.1e} px of the template",
    )


def warp_round_trip(context: DoctorContext) -> CheckResult:
    """cv2.warpAffine there and back reproduces a smooth image; an integer shift is exact."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    smooth = cv2.resize(
        rng.random((12, 12, 3)).astype(np.float32), (96, 96), interpolation=cv2.INTER_CUBIC
    )
    forward = _known_similarity(12.0, 1.1, (5.3, -7.1))
    inverse = cv2.invertAffineTransform(forward)
    there = cv2.warpAffine(smooth, forward, (96, 96), flags=cv2.INTER_LINEAR)
    back = cv2.warpAffine(there, inverse, (96, 96), flags=cv2.INTER_LINEAR)
    interior = np.abs(back[32:64, 32:64] - smooth[32:64, 32:64])
    max_error, mean_error = float(interior.max()), float(interior.mean())

    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    shifted = cv2.warpAffine(noise, shift, (64, 64), flags=cv2.INTER_LINEAR)
    shift_exact = np.array_equal(shifted[:-3, 5:], noise[3:, :-5])

    summary = f"there and back: max error {max_error:.3g}, mean {mean_error:.3g}; integer shift "
    within = max_error <= _WARP_MAX_ERROR and mean_error <= _WARP_MEAN_ERROR
    if not within or not shift_exact:
        tolerance = f"(tolerance max {_WARP_MAX_ERROR:g}, mean {_WARP_MEAN_ERROR:g})"
        detail = summary + ("exact " if shift_exact else "NOT exact ") + tolerance
        return CheckResult(WARP, FAIL, detail, NUMPY_FIX)
    return CheckResult(WARP, PASS, summary + "exact")


def grid_sample_identity(context: DoctorContext) -> CheckResult:
    """F.affine_grid with the identity theta, sampled nearest and bilinear, returns the input."""
    import torch
    import torch.nn.functional as F

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, _GRID_HEIGHT, _GRID_WIDTH, generator=generator)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    failures = []
    for device in devices:
        source = image.to(device)
        grid = F.affine_grid(identity.to(device), list(source.shape), align_corners=True)
        for mode in ("nearest", "bilinear"):
            sampled = F.grid_sample(source, grid, mode=mode, align_corners=True)
            if not torch.equal(sampled, source):
                error = (sampled - source).abs().max().item()
                failures.append(f"{mode} on {device} differs by up to {error:.3g}")
    if failures:
        return CheckResult(GRID_SAMPLE, FAIL, "; ".join(failures), TORCH_REINSTALL_FIX)
    size = f"{_GRID_WIDTH}x{_GRID_HEIGHT}"
    return CheckResult(
        GRID_SAMPLE,
        PASS,
        f"nearest and bilinear reproduce a random {size} image exactly on {', '.join(devices)}",
    )
