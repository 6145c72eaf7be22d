"""The whole pipeline on a real photo: skimage's astronaut, one face, 512x512.

It uses the smallest GPEN generator in the weights folder, or a seeded random GPEN-256
(which checks the plumbing, not the restoration), and the registry's first detector present
(lowest `rank`: the smallest and fastest first).
"""

from __future__ import annotations

import time
from pathlib import Path

from gpen_cli.core.errors import GpenError
from gpen_cli.core.words import count
from gpen_cli.doctor.result import BUG_FIX, FAIL, PASS, WARN, CheckResult, DoctorContext
from gpen_cli.doctor.storage import present_models
from gpen_cli.weights import download, registry, store

SELF_TEST = "self-test"

RANDOM_MODEL = "GPEN-BFR-256"
RANDOM_NOTE = "random weights: checks the plumbing, not the restoration"
# Pixels this far outside a face's pasted square must come out unchanged.
_FOOTPRINT_MARGIN = 8
_DOWNLOAD_TIMEOUT_S = 15.0


def fetched_detector() -> registry.ModelSpec:
    """The detector fetched when none is present: the lowest-ranked one with a download URL
    (retinaface-mobile, the smallest built-in one)."""
    return next(spec for spec in registry.of_kind("detector") if spec.url)


def pick_detector(folder: Path) -> tuple[str | None, str]:
    """The first present detector, else `fetched_detector` fetched now; (None, why) if neither."""
    for spec in registry.of_kind("detector"):
        if store.weight_path(spec.name, folder).is_file():
            return spec.name, ""
    spec = fetched_detector()
    try:
        download.download(spec, folder, progress=False, timeout=_DOWNLOAD_TIMEOUT_S)
    except download.DownloadError as exc:
        return None, exc.reason
    return spec.name, ""


def pick_generator(folder: Path) -> str | None:
    """The present GPEN model with the smallest face size, or None."""
    generators = [spec for spec in present_models(folder) if spec.kind == "gpen"]
    return min(generators, key=lambda spec: spec.config["size"]).name if generators else None


def _random_generator():
    return registry.MODELS[RANDOM_MODEL].random_init(0)


def _changed_far_from_faces(before, after, landmarks: list, size: int) -> int:
    """How many pixels changed outside every face's pasted square (plus a margin)."""
    import numpy as np

    from gpen_cli.stages.align import align_face, transformed_bounds

    height, width = before.shape[:2]
    far = np.ones((height, width), dtype=bool)
    for points in landmarks:
        alignment = align_face(np.asarray(points, dtype=np.float64), size)
        box = transformed_bounds(alignment.inverse, size, size, width, height, _FOOTPRINT_MARGIN)
        if box is not None:
            x0, y0, x1, y1 = box
            far[y0:y1, x0:x1] = False
    changed = np.any(before != after, axis=-1)
    return int(np.count_nonzero(changed & far))


def _problem(image, result, size: int, detector: str) -> str | None:
    """What is wrong with the restorer's result for `image` (None when all is well)."""
    import numpy as np

    landmarks = [face.landmarks for face in result.faces]
    if not result.faces:
        return f"{detector} found no face in the astronaut photo"
    if not np.isfinite(np.asarray(landmarks, dtype=np.float64)).all():
        return "landmarks are not finite"
    output = result.image
    if output.shape != image.shape or output.dtype != image.dtype:
        return f"output is {output.shape} {output.dtype}, input {image.shape} {image.dtype}"
    changed = _changed_far_from_faces(image, output, landmarks, size)
    return f"{changed} pixels changed far from the face" if changed else None


def self_test(context: DoctorContext) -> CheckResult:
    """FaceRestorer.restore on the astronaut: a face found, shape kept, the rest untouched."""
    folder = context.weights_dir
    try:
        from skimage import data
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "skimage":
            raise  # scikit-image is there but one of its dependencies is not
        return CheckResult(
            SELF_TEST,
            WARN,
            "scikit-image is not installed: no test photo",
            "pip install scikit-image",
        )
    import numpy as np

    from gpen_cli.core.config import MaskKind
    from gpen_cli.pipeline.restorer import FaceRestorer

    detector, why = pick_detector(folder)
    if detector is None:
        spec = fetched_detector()
        return CheckResult(
            SELF_TEST,
            WARN,
            f"no detector weights in {folder}, and {spec.filename} could not be downloaded ({why})",
            store.fetch_command([spec.name], folder),
        )
    generator = pick_generator(folder)
    # The parsing mask when its weights are here; the self-test never downloads them.
    parsing = store.weight_path("parsenet", folder).is_file()
    mask = MaskKind.PARSING if parsing else MaskKind.RECT
    try:
        restorer = FaceRestorer(
            generator or _random_generator(), detector, weights_dir=folder, mask=mask
        )
    except GpenError as exc:
        names = [name for name in (generator, detector) if name]
        return CheckResult(
            SELF_TEST, FAIL, str(exc), store.fetch_command(names, folder, force=True)
        )

    image = np.ascontiguousarray(data.astronaut()[..., ::-1])  # RGB -> BGR, as photos are loaded
    started = time.perf_counter()
    result = restorer.restore(image)
    elapsed = time.perf_counter() - started

    model_label = generator or f"random {RANDOM_MODEL}"
    problem = _problem(image, result, restorer.size, detector)
    if problem:
        fix = store.fetch_command([detector], folder, force=True) if not result.faces else BUG_FIX
        return CheckResult(SELF_TEST, FAIL, f"{model_label} + {detector}: {problem}", fix)
    detail = (
        f"restored {count(len(result.faces), 'face')} of skimage's astronaut "
        f"{image.shape[1]}x{image.shape[0]} in {elapsed:.1f} s with {model_label} + {detector}; "
        f"{mask.value} mask; shape kept, pixels far from the face unchanged"
    )
    if generator is None:
        detail += f" ({RANDOM_NOTE})"
    return CheckResult(SELF_TEST, PASS, detail)
