"""The built-in stages, registered in pipeline order: the official GPEN pipeline.

    prepare  resize, upscale, detect, landmarks, smooth, align, choose, clahe
    forward  forward (GPEN), mask (paste masks), score
    finish   blend, paste (aligned mode: blend, upscale)

Each builder says when its configuration runs the stage. Aligned mode (the input is one
aligned face crop) keeps only what has no face to find or paste: align, clahe, the forward
step, blend and the face's upscale. "smooth" is a place, not a stage the restorer builds: the
video engine adds its landmark smoothing there while a film is restored (`add_stage`).
"""

from __future__ import annotations

from gpen_cli.stages.chain import (
    Align,
    AlignedInput,
    Blend,
    CanvasSizedWorking,
    Clahe,
    Detect,
    Generate,
    PasteBack,
    PasteMasks,
    RefineLandmarks,
    ScoreInputs,
    ShortEdgeResize,
    UpscaleCanvas,
    UpscaleFace,
    WarnEnlargedFaces,
)
from gpen_cli.stages.choose import ChooseFaces, rule_for
from gpen_cli.stages.registry import StageContext, StageEntry, register
from gpen_cli.stages.score import Score


def _photo(context: StageContext) -> bool:
    """Faces are found in a photo and pasted back (not aligned mode)."""
    return not context.config.aligned


def _upscaled_photo(context: StageContext) -> bool:
    return _photo(context) and context.upscaler is not None


def _choose(context: StageContext) -> ChooseFaces | None:
    rule = rule_for(context.config, context.detector, context.size, context.embedder)
    return ChooseFaces(rule, uses_torch=context.config.person is not None) if rule else None


def _paste(context: StageContext) -> PasteBack:
    config = context.config
    return PasteBack(config.short_edge if config.keep_resized else None)


_PIPELINE = (
    # ---------------------------------------------------------------------------- prepare
    StageEntry(
        "resize",
        "prepare",
        lambda c: (
            ShortEdgeResize(c.config.short_edge) if _photo(c) and c.config.short_edge else None
        ),
    ),
    StageEntry(
        "upscale",
        "prepare",
        lambda c: UpscaleCanvas(c.upscaler, c.on_tile) if _upscaled_photo(c) else None,
    ),
    StageEntry(
        "resize-canvas",
        "prepare",
        lambda c: CanvasSizedWorking(c.config.upscale) if _upscaled_photo(c) else None,
        timed_as="resize",
    ),
    StageEntry(
        "detect",
        "prepare",
        lambda c: Detect(c.detector, c.config.only_center_face) if _photo(c) else None,
    ),
    StageEntry(
        "landmarks",
        "prepare",
        lambda c: RefineLandmarks(c.refiner) if _photo(c) and c.refiner is not None else None,
    ),
    StageEntry("smooth", "prepare", lambda c: None),
    StageEntry(
        "warn-enlarged",
        "prepare",
        lambda c: WarnEnlargedFaces(c.size, c.generator.source) if _upscaled_photo(c) else None,
        timed_as="align",  # a check on the faces about to be aligned
    ),
    StageEntry("align", "prepare", lambda c: Align(c.size) if _photo(c) else AlignedInput(c.size)),
    StageEntry("choose", "prepare", lambda c: _choose(c) if _photo(c) else None),
    StageEntry("clahe", "prepare", lambda c: Clahe() if c.config.clahe else None),
    StageEntry(
        "score-inputs",
        "prepare",
        lambda c: ScoreInputs() if c.scorer is not None else None,
        timed_as="align",
    ),
    # ---------------------------------------------------------------------------- forward
    StageEntry("forward", "forward", lambda c: Generate(c.generator)),
    StageEntry("mask", "forward", lambda c: PasteMasks(c.masker) if c.masker is not None else None),
    StageEntry(
        "score",
        "forward",
        lambda c: Score(c.scorer, c.config.fidelity_weight) if c.scorer is not None else None,
    ),
    # ----------------------------------------------------------------------------- finish
    StageEntry("blend", "finish", lambda c: Blend(c.config.fidelity_weight)),
    StageEntry("paste", "finish", lambda c: _paste(c) if _photo(c) else None),
    StageEntry(
        "upscale-face",  # the official use_sr upscales the restored face
        "finish",
        lambda c: (
            UpscaleFace(c.upscaler, c.on_tile) if not _photo(c) and c.upscaler is not None else None
        ),
        timed_as="upscale",
    ),
)

for _entry in _PIPELINE:
    register(_entry)
