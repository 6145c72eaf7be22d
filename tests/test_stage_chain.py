"""The restorer runs explicit lists of named stages: added stages run and are timed, no
timer runs inside another, and every name is the one declared list's."""

from __future__ import annotations

import time

import numpy as np
import torch

from gpen_cli.core.timing import StageClock
from gpen_cli.pipeline.restorer import FaceRestorer, PreparedImage
from gpen_cli.stages.faces import Face
from gpen_cli.stages.registry import stage_names


class Identity(torch.nn.Module):
    size = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class OneFace:
    """A detector that finds one face in the middle of any photo."""

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        x, y, side = width / 2, height / 2, min(width, height) / 3
        box = np.array([x - side / 2, y - side / 2, x + side / 2, y + side / 2])
        points = np.array(
            [[x - side / 5, y - side / 8], [x + side / 5, y - side / 8], [x, y]]
            + [[x - side / 6, y + side / 5], [x + side / 6, y + side / 5]]
        )
        return [Face(box=box, score=0.99, landmarks=points)]


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


class ShiftFaces:
    """A stage of a test's own: moves every face's landmarks, and counts its calls."""

    name = "smooth"
    uses_torch = False

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, work: PreparedImage) -> None:
        self.calls += 1
        work.faces = [
            Face(box=face.box + 3, score=face.score, landmarks=face.landmarks + 3)
            for face in work.faces
        ]


def test_an_added_stage_runs_before_the_one_named_and_is_timed_under_its_name() -> None:
    clock = StageClock()
    restorer = FaceRestorer(Identity(), OneFace(), device="cpu", mask="rect", clock=clock)
    plain = restorer.prepare(photo())
    stage = ShiftFaces()
    restorer.add_stage(stage, before="align")
    names = [existing.name for existing in restorer.prepare_stages]
    assert names.index("smooth") == names.index("align") - 1
    clock.take()
    shifted = restorer.prepare(photo())
    assert stage.calls == 1 and "smooth" in clock.take()
    np.testing.assert_allclose(shifted.faces[0].landmarks, plain.faces[0].landmarks + 3)
    assert not np.array_equal(shifted.crops[0], plain.crops[0])  # aligned on the new points
    restorer.remove_stage(stage)
    restorer.prepare(photo())
    assert stage.calls == 1


def test_every_stage_is_named_from_the_declared_list_and_timers_never_nest() -> None:
    """Aligned mode with upscaling once timed the upscale inside the paste: the stages'
    seconds summed to more than the call took."""
    clock = StageClock()
    restorer = FaceRestorer(
        Identity(), device="cpu", aligned=True, upscale=2, bg_upsampler="none", clock=clock
    )
    stages = [*restorer.prepare_stages, *restorer.forward_stages, *restorer.finish_stages]
    assert {stage.name for stage in stages} <= set(stage_names())
    clock.take()
    started = time.perf_counter()
    result = restorer.restore(photo()[:64, :64])
    elapsed = time.perf_counter() - started
    timed = clock.take()
    assert result.image.shape == (128, 128, 3)
    assert {"align", "forward", "blend", "upscale"} <= set(timed)
    assert sum(timed.values()) <= elapsed


def test_the_identity_model_through_the_stage_lists_gives_the_photo_back_where_no_face_is() -> None:
    """Outside the pasted face the photo is untouched, byte for byte."""
    restorer = FaceRestorer(Identity(), OneFace(), device="cpu", mask="rect")
    image = photo(1)
    result = restorer.restore(image)
    assert len(result.faces) == 1
    untouched = np.ones(image.shape[:2], bool)
    x0, y0, x1, y1 = (int(v) for v in result.faces[0].box)
    untouched[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    np.testing.assert_array_equal(result.image[untouched], image[untouched])
