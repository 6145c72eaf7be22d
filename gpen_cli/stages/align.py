"""Similarity transform from a face's 5 landmarks to GPEN's template, and the aligned crop.

The numbers follow the official GPEN code (align_faces.py, face_enhancement.py), so the
crops a generator sees match what it was trained and published with: the 96x112 template,
made square, padded by 0.25 on each side and scaled to the crop size; a least-squares
similarity (rotation, uniform scale, translation — never a reflection); bilinear warping
with a black border.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

# The 5-point template of the 96x112 face crop GPEN's alignment starts from (x, y).
_BASE_TEMPLATE = np.array(
    [
        [30.29459953, 51.69630051],
        [65.53179932, 51.50139999],
        [48.02519989, 71.73660278],
        [33.54930115, 92.3655014],
        [62.72990036, 92.20410156],
    ]
)
_BASE_SIZE = np.array([96.0, 112.0])  # width, height
_INNER_PADDING = 0.25

# How far past the crop's footprint an interpolation kernel reads (Lanczos-4 is the widest).
_ROI_MARGIN = 4


@functools.lru_cache(maxsize=8)
def _reference_points_cached(size: int) -> np.ndarray:
    square = _BASE_SIZE.max()
    points = _BASE_TEMPLATE + (square - _BASE_SIZE) / 2  # centre the template in a square
    padding = square * _INNER_PADDING  # per side
    points = points + padding
    padded = square + 2 * padding
    points = points * (size / padded)
    points.setflags(write=False)
    return points


def reference_points(size: int) -> np.ndarray:
    """Where the 5 landmarks land in a `size`x`size` GPEN crop (5x2 float64, x then y)."""
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    return _reference_points_cached(int(size)).copy()


def _umeyama(src: np.ndarray, dst: np.ndarray, scale: float | None) -> tuple[np.ndarray, float]:
    """Umeyama's least-squares similarity from `src` to `dst` points (float32, K×2).

    `scale` None estimates it; a number fixes it. Returns the 2x3 matrix and the scale. The
    arithmetic is the official code's (float32 points, float64 matrix, the rotation forced
    proper), which gives its matrices to the last bit, hence its crops and paste-back exactly.
    """
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    covariance = dst_centred.T @ src_centred / len(src)
    signs = np.ones(2, dtype=np.float64)
    if np.linalg.det(covariance) < 0:
        signs[1] = -1.0
    u, singular, vt = np.linalg.svd(covariance)
    rank = np.linalg.matrix_rank(covariance)
    if rank == 0:
        raise ValueError("landmarks are degenerate (all at one point)")
    if rank == 1 and np.linalg.det(u) * np.linalg.det(vt) > 0:
        rotation = (u @ vt).astype(np.float64)
    else:
        flipped = signs.copy()
        if rank == 1:
            flipped[1] = -1.0
        rotation = u @ np.diag(flipped) @ vt
    if scale is None:
        scale = 1.0 / src_centred.var(axis=0).sum() * (singular @ signs)
    translation = dst_mean - scale * (rotation @ src_mean.T)
    return np.hstack([rotation * scale, translation[:, None]]).astype(np.float64), float(scale)


def _points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity mapping `src` points onto `dst` points, as a 2x3 matrix."""
    src, dst = _points(src), _points(dst)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching sets of >= 2 points, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks are not finite")
    if float(src.var(axis=0).sum()) < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    return _umeyama(src, dst, None)[0]


@dataclass
class Alignment:
    """How one face maps to its aligned crop and back."""

    forward: np.ndarray  # 2x3 float64, image -> crop
    inverse: np.ndarray  # 2x3 float64, crop -> image
    size: int


def align_face(landmarks: np.ndarray, size: int) -> Alignment:
    """The official GPEN alignment of a face, given its 5 landmarks (x, y) in the image.

    The inverse is fitted as the official code fits it (template onto landmarks at the
    reciprocal scale), not by inverting the forward matrix: the two differ by ~1e-5, enough
    to move a pasted pixel by a grey level.
    """
    template = reference_points(size)
    forward = similarity_transform(landmarks, template)
    _, scale = _umeyama(_points(landmarks), _points(template), None)
    inverse, _ = _umeyama(_points(template), _points(landmarks), 1.0 / scale)
    return Alignment(forward=forward, inverse=inverse, size=int(size))


def transformed_bounds(
    matrix: np.ndarray, width: int, height: int, limit_w: int, limit_h: int, margin: int
) -> tuple[int, int, int, int] | None:
    """The integer box (x0, y0, x1, y1), padded by `margin` and clipped to the `limit_w` x
    `limit_h` frame, covering a `width` x `height` rectangle mapped by the 2x3 `matrix`;
    None when it lies entirely outside the frame."""
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    x0 = max(int(np.floor(mapped[:, 0].min())) - margin, 0)
    y0 = max(int(np.floor(mapped[:, 1].min())) - margin, 0)
    x1 = min(int(np.ceil(mapped[:, 0].max())) + margin, limit_w)
    y1 = min(int(np.ceil(mapped[:, 1].max())) + margin, limit_h)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def offset_affine(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`matrix` (2x3) applied to points given relative to an origin at (dx, dy)."""
    shifted = matrix.astype(np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([dx, dy], dtype=np.float64)
    return shifted


def warp_crop(
    image: np.ndarray,
    alignment: Alignment,
    interpolation: int = cv2.INTER_LINEAR,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """The aligned `size`x`size` crop of a face, black where it falls outside the image.

    Only the part of the image the crop samples is warped from (what matters for big
    photos with many small faces); the result is the same as warping the whole image,
    which the official code does with bilinear sampling (its flag 3 means bilinear in
    cv2.warpAffine) and a constant black border.
    """
    size = alignment.size
    height, width = image.shape[:2]
    roi = transformed_bounds(alignment.inverse, size, size, width, height, _ROI_MARGIN)
    # A crop wholly outside the image is all border: warp from the whole image then.
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
    matrix = offset_affine(alignment.forward, x0, y0)
    return cv2.warpAffine(
        image[y0:y1, x0:x1],
        matrix,
        (size, size),
        flags=interpolation,
        borderMode=border,
        borderValue=0,
    )
