"""FaceRestorer: the stages of `gpen_cli.stages` chained into one call.

`restore(image)` runs everything for one photo. `prepare` (resize, detect, align, CLAHE),
`forward` (GPEN, then the parsing mask) and `finish` (soften, blend, paste) are the same work
in three steps, so an engine can send faces from several photos through the models together.
Each step runs a list of named stage objects (`gpen_cli/stages/chain.py`) that the restorer
builds once, walking the stage registry (`gpen_cli/stages/registry.py`) with its configuration
and networks. Aligned mode (the input is one aligned face crop) is a setting of the restorer:
the same three steps, with nothing to detect or paste.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.devices import torch_turn
from gpen_cli.core.timing import NoClock, StageClock
from gpen_cli.pipeline.resolve import resolve
from gpen_cli.stages.chain import (
    FaceInput,
    FaceStage,
    FinishStage,
    FinishWork,
    PhotoStage,
    PreparedImage,
    RestoredFace,
)
from gpen_cli.stages.choose import face_items
from gpen_cli.stages.detect import Detector, FanLandmarks
from gpen_cli.stages.faces import Face, FaceItem
from gpen_cli.stages.forward import GpenForward
from gpen_cli.stages.mask import Masker
from gpen_cli.stages.registry import StageContext, build_stages

logger = logging.getLogger(__name__)


@dataclass
class FaceRecord:
    """One face as reported to the user, in the input image's pixel coordinates."""

    box: list[float]
    score: float
    landmarks: list[list[float]]

    @classmethod
    def from_face(cls, face: Face, scale: float) -> FaceRecord:
        return cls(
            box=[round(float(v) / scale, 2) for v in face.box],
            score=round(float(face.score), 4),
            landmarks=[
                [round(float(x) / scale, 2), round(float(y) / scale, 2)] for x, y in face.landmarks
            ],
        )


@dataclass
class RestoreResult:
    image: np.ndarray
    faces: list[FaceRecord]
    input_crops: list[np.ndarray] = field(default_factory=list)
    restored_crops: list[np.ndarray] = field(default_factory=list)
    # Every face found (restored or not) in detection order, with its scores when scored.
    items: list[FaceItem] = field(default_factory=list)


def check_photo(image: Any) -> None:
    """ValueError saying what is wrong unless `image` is an H×W×3 uint8/uint16 array; None is
    what `cv2.imread` returns for a file it cannot read, so that is said first."""
    if image is None:
        raise ValueError("image is None (cv2.imread returns None for a missing or unreadable file)")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a NumPy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"image must be H×W×3 BGR uint8 or uint16, got shape {image.shape} {image.dtype}"
        )


class FaceRestorer:
    """Restore every face of a BGR photo with GPEN, as the official pipeline does.

    Built from a `RestoreConfig` (`config=`), changed by keyword settings of the same names
    (`FaceRestorer(mask="rect")`); every value is checked before anything loads. `model`
    and `detector` may also be objects, for tests and embedding: any module mapping
    N×3×S×S RGB in [-1, 1] to the same (S from `model.size` or `size=`), and any object
    with `detect(image_bgr) -> list[Face]`. `clock`, when given, is told how long each stage
    takes; `on_tile(done, total)` the upsampler's progress over its tiles.
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        detector: str | Detector | None = None,
        *,
        config: RestoreConfig | None = None,
        size: int | None = None,
        clock: StageClock | NoClock | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        **settings: Any,
    ):
        for name, value in (("model", model), ("detector", detector)):
            if isinstance(value, str | Path):
                settings[name] = str(value)
        self.config = config = (config or RestoreConfig()).but(**settings)
        given = detector if detector is not None and not isinstance(detector, str) else None
        built = resolve(
            config, generator=model if isinstance(model, nn.Module) else None, detector=given
        )
        self.generator = GpenForward(
            built.generator,
            size=size,
            device=built.device,
            batch_size=config.batch_size,
            half=config.half,
            compile_model=config.compile_model,
            exact=config.exact,
            source=type(model).__name__ if isinstance(model, nn.Module) else config.model,
            runtime=config.runtime,
        )
        self.size = self.generator.size
        self.batch_size = self.generator.batch_size
        self._torch_turn = torch_turn(built.device)
        self.clock = clock or NoClock()
        self.upscaler = built.upscaler
        self.on_tile = on_tile
        self.detector: Detector | None = built.detector
        self.refiner: FanLandmarks | None = built.refiner
        self.masker: Masker | None = built.masker
        self.embedder, self.scorer = built.embedder, built.scorer
        context = StageContext(
            config,
            self.generator,
            upscaler=built.upscaler,
            detector=built.detector,
            refiner=built.refiner,
            masker=built.masker,
            embedder=built.embedder,
            scorer=built.scorer,
            on_tile=on_tile,
        )
        self.prepare_stages: list[PhotoStage] = build_stages("prepare", context)
        self.forward_stages: list[FaceStage] = build_stages("forward", context)
        self.finish_stages: list[FinishStage] = build_stages("finish", context)

    @property
    def aligned(self) -> bool:
        return self.config.aligned

    def add_stage(self, stage: PhotoStage, before: str) -> None:
        """Run `stage` in the prepare list just before the first stage named `before`."""
        names = [existing.name for existing in self.prepare_stages]
        self.prepare_stages.insert(names.index(before), stage)

    def remove_stage(self, stage: PhotoStage) -> None:
        """Take a stage added with `add_stage` out of the prepare list again."""
        self.prepare_stages.remove(stage)

    def _run(self, stages: Sequence, work: Any) -> None:
        """Each stage in order, timed under its name, holding the device's turn if it runs
        a network."""
        for stage in stages:
            turn = self._torch_turn if stage.uses_torch else nullcontext()
            with self.clock.stage(stage.name), turn:
                stage(work)

    # ------------------------------------------------------------------ one photo, three steps

    def prepare(self, image: np.ndarray, source: str | None = None) -> PreparedImage:
        """Detect, align and crop the faces of a BGR uint8/uint16 photo (`source`: its name,
        for the warning that speaks of it)."""
        check_photo(image)
        work = PreparedImage(image, source=source)
        self._run(self.prepare_stages, work)
        work.working = None  # only the stages needed it; the engines hold photos a while
        return work

    def forward(self, crops: Sequence[np.ndarray | FaceInput]) -> list[RestoredFace]:
        """GPEN on the crops, in batches; then each restored face's paste mask (and, when
        scoring, its scores)."""
        faces = [RestoredFace.of(crop) for crop in crops]
        self._run(self.forward_stages, faces)
        return faces

    def finish(
        self,
        prepared: PreparedImage,
        restored: Sequence[RestoredFace],
        *,
        reuse_input: bool = False,
    ) -> RestoreResult:
        """Soften small faces, blend with the input crops, paste back through the masks.

        `reuse_input`: the caller is done with the input photo, so the faces are pasted into
        it rather than into a copy (a 108 MP photo spares 324 MB).
        """
        work = FinishWork(prepared, restored, reuse_input)
        self._run(self.finish_stages, work)
        if self.aligned:
            return RestoreResult(work.blended[0], [], list(prepared.crops), work.blended)
        kept_resized = self.config.keep_resized and prepared.scale != 1.0
        scale = 1.0 if kept_resized else prepared.scale
        records = [FaceRecord.from_face(face, scale) for face in prepared.faces]
        items = face_items(prepared, restored, scale)
        return RestoreResult(work.image, records, prepared.crops, work.blended, items)

    def restore(self, image: np.ndarray) -> RestoreResult:
        """Restore every face of a BGR photo (uint8 or uint16); the rest is left untouched.

        In aligned mode the photo is one aligned face crop and the result is its restoration.
        """
        prepared = self.prepare(image)
        return self.finish(prepared, self.forward(prepared.model_inputs))
