"""The stage registry: the restorer's lists are the registered entries walked in order, a stage
registered from a test file alone runs in its place, is timed and tabulated by bench, and goes
again when unregistered; the built-in lists are today's official pipeline, name for name."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint

import cv2
import numpy as np
import pytest
import torch
from test_stage_chain import Identity, OneFace

from gpen_cli.bench.figures import PeakMemory
from gpen_cli.bench.run import BenchReport
from gpen_cli.bench.table import table_rows
from gpen_cli.bench.timing import run_config
from gpen_cli.bench.workload import Workload
from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.core.timing import StageClock
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages import registry
from gpen_cli.stages.chain import FinishWork
from gpen_cli.stages.registry import StageContext, StageEntry, entries, register, unregister

# The names the pipeline was timed and tabulated under before the registry: bench's columns.
OFFICIAL_NAMES = (
    "decode", "resize", "upscale", "detect", "landmarks", "smooth", "align", "choose", "clahe",
    "forward", "mask", "score", "blend", "paste", "encode",
)  # fmt: skip


@dataclass
class Invert:
    """A finish stage of the test's own: every blended face in negative."""

    name: str = "invert"
    uses_torch: bool = False

    def __call__(self, work: FinishWork) -> None:
        work.blended = [255 - face for face in work.blended]


def build_invert(context: StageContext) -> Invert | None:
    return None if context.config.aligned else Invert()  # a face to paste back only


@pytest.fixture
def inverted():
    register(StageEntry("invert", "finish", build_invert, after="blend"))
    try:
        yield
    finally:
        unregister("invert")


def grey(value: int = 100) -> np.ndarray:
    return np.full((120, 160, 3), value, np.uint8)


def restorer(**settings) -> FaceRestorer:
    return FaceRestorer(Identity(), OneFace(), device="cpu", mask="rect", **settings)


def names(stages) -> list[str]:
    return [type(stage).__name__ for stage in stages]


def test_the_built_in_lists_are_the_official_pipeline_in_its_order() -> None:
    assert registry.stage_names() == OFFICIAL_NAMES
    plain = restorer()
    assert names(plain.prepare_stages) == ["Detect", "Align"]
    assert names(plain.forward_stages) == ["Generate", "PasteMasks"]
    assert names(plain.finish_stages) == ["Blend", "PasteBack"]
    resized = restorer(short_edge=100, clahe=True, faces=[0])
    assert names(resized.prepare_stages) == [
        "ShortEdgeResize", "Detect", "Align", "ChooseFaces", "Clahe",
    ]  # fmt: skip
    upscaled = restorer(upscale=2, bg_upsampler="none")
    assert names(upscaled.prepare_stages) == [
        "UpscaleCanvas", "CanvasSizedWorking", "Detect", "WarnEnlargedFaces", "Align",
    ]  # fmt: skip
    aligned = FaceRestorer(Identity(), device="cpu", aligned=True, upscale=2, bg_upsampler="none")
    assert names(aligned.prepare_stages) == ["AlignedInput"]
    assert names(aligned.finish_stages) == ["Blend", "UpscaleFace"]
    for built in (plain, resized, upscaled, aligned):
        stages = built.prepare_stages + built.forward_stages + built.finish_stages
        assert {stage.name for stage in stages} <= set(OFFICIAL_NAMES)


def test_a_registered_stage_runs_in_its_place_and_changes_only_the_faces(inverted) -> None:
    clock = StageClock()
    restored = restorer(clock=clock)
    assert [stage.name for stage in restored.finish_stages] == ["blend", "invert", "paste"]
    clock.take()
    image = grey(100)
    result = restored.restore(image)
    assert "invert" in clock.take()
    x0, y0, x1, y1 = (int(v) for v in result.faces[0].box)
    centre = result.image[(y0 + y1) // 2, (x0 + x1) // 2]
    assert centre.tolist() == [155, 155, 155]  # the identity face, in negative
    untouched = np.ones(image.shape[:2], bool)
    untouched[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    np.testing.assert_array_equal(result.image[untouched], image[untouched])
    aligned = FaceRestorer(Identity(), device="cpu", aligned=True)  # its builder says None
    assert [stage.name for stage in aligned.finish_stages] == ["blend"]


def test_without_the_stage_the_identity_model_gives_the_photo_back() -> None:
    image = grey(100)
    np.testing.assert_array_equal(restorer().restore(image).image, image)


def test_bench_times_and_tabulates_a_registered_stage(inverted, tmp_path) -> None:
    assert registry.stage_names() == (*OFFICIAL_NAMES[:13], "invert", *OFFICIAL_NAMES[13:])
    photo = tmp_path / "grey.png"
    cv2.imwrite(str(photo), grey())
    config = RestoreConfig(device="cpu", mask="rect")
    work = Workload(config, paths=[photo], detector=OneFace())
    result = run_config(config, Identity(), work, 1, PeakMemory(torch.device("cpu")))
    assert list(result.stages_s) == ["decode", "detect", "align", "forward", "mask", "blend"] + [
        "invert", "paste", "encode",
    ]  # fmt: skip
    report = BenchReport({}, {}, "pipeline", [], 1, None, None, True, [result])
    header, rows = table_rows(report)
    assert header.index("invert s") == header.index("blend s") + 1 and len(rows[0]) == len(header)


def test_unregistering_gives_the_old_lists_back() -> None:
    register(StageEntry("invert", "finish", build_invert, after="blend"))
    try:
        assert [stage.name for stage in restorer().finish_stages] == ["blend", "invert", "paste"]
    finally:
        unregister("invert")
    assert registry.stage_names() == OFFICIAL_NAMES
    assert [stage.name for stage in restorer().finish_stages] == ["blend", "paste"]


def test_places_keep_registration_order_and_a_missing_place_is_one_line() -> None:
    def none(context: StageContext) -> None:
        return None

    added = [
        StageEntry("first-after", "finish", none, after="blend"),
        StageEntry("second-after", "finish", none, after="blend"),
        StageEntry("before-paste", "finish", none, before="paste"),
        StageEntry("later", "finish", none, after="not-yet"),  # named before it exists
        StageEntry("not-yet", "finish", none),
    ]
    for entry in added:
        register(entry)
    try:
        order = [entry.name for entry in entries("finish")]
        assert order == [
            "blend", "first-after", "second-after", "before-paste", "paste", "upscale-face",
            "not-yet", "later",
        ]  # fmt: skip
        with pytest.raises(ValueError, match="registered already"):
            register(StageEntry("blend", "finish", none))
        unregister("not-yet")
        with pytest.raises(GpenError, match="'later': no finish stage named 'not-yet'"):
            entries("finish")
    finally:
        for entry in added[:4]:
            unregister(entry.name)


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch) -> None:
    (tmp_path / "tint_plugin.py").write_text(
        "from gpen_cli.stages.registry import StageEntry, register\n"
        "register(StageEntry('tint', 'finish', lambda context: None, before='paste'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("tint", "tint_plugin", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    monkeypatch.setattr(registry, "_discovered", False)
    try:
        assert "tint" in registry.stage_names()
    finally:
        unregister("tint")
        sys.modules.pop("tint_plugin", None)
    broken = EntryPoint("broken", "no_such_module_here", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    monkeypatch.setattr(registry, "_discovered", False)
    with pytest.raises(GpenError, match=r"^stage plugin broken \(no_such_module_here\) failed"):
        registry.stage_names()
