"""`gpen export` and the onnxruntime runtime: files that compute what PyTorch computes.

A seeded GPEN-64 (narrow) is exported once per module and read back: its output against the
official formulation, its metadata, its free batch axis; the refusal path writes nothing. The
seeded ParseNet and GPEN-BFR-256 of the official references run through the whole pipeline
with `runtime="onnxruntime"`, compared with the official photo like the torch path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx", reason="the onnx extra: pip install -e '.[onnx]'")
pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")

from gpen_cli.cli import app  # noqa: E402
from gpen_cli.models.loading import random_gpen  # noqa: E402
from gpen_cli.models.onnx.networks import TOLERANCE, gpen_onnx, random_faces  # noqa: E402
from gpen_cli.models.onnx.runtime import run, session  # noqa: E402

# Narrow, with a small mapping network: a second to export and check.
TINY = {"size": 64, "channel_multiplier": 1, "narrow": 0.125, "style_dim": 64, "n_mlp": 2}


@pytest.fixture(scope="module")
def tiny_gpen():
    return random_gpen(7, **TINY).eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_gpen):
    path = tmp_path_factory.mktemp("export") / "tiny.pth"
    torch.save(tiny_gpen.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def exported_tiny(tmp_path_factory, tiny_checkpoint):
    """The CLI's export of the tiny checkpoint: its path and what the command printed."""
    out = tmp_path_factory.mktemp("export-out") / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", str(tiny_checkpoint), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow  # an export: about 2 s here
def test_export_writes_a_file_within_1e_3_of_torch_at_any_batch(exported_tiny, tiny_gpen):
    path, printed = exported_tiny
    assert "largest difference" in printed
    sess = session(path.read_bytes())
    for batch in (1, 3):
        faces = random_faces(batch, 64, seed=batch)
        with torch.inference_mode():
            expected = tiny_gpen(faces).numpy()
        got = run(sess, faces.numpy())
        assert got.shape == (batch, 3, 64, 64)
        assert np.abs(got - expected).max() <= 1e-3


@pytest.mark.slow  # an export: about 2 s here
def test_exported_file_is_standard_opset_17_with_its_metadata(exported_tiny):
    model = onnx.load(exported_tiny[0])
    assert {(o.domain or "ai.onnx", o.version) for o in model.opset_import} == {("ai.onnx", 17)}
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    (face,) = model.graph.input
    assert face.name == "face" and model.graph.output[0].name == "restored"
    assert face.type.tensor_type.shape.dim[0].dim_param == "batch"
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["model"] == "tiny" and metadata["size"] == "64"
    assert metadata["channel_order"] == "RGB" and metadata["input_range"].startswith("[-1, 1]")
    assert float(metadata["max_abs_diff_vs_torch"]) <= 1e-3


@pytest.mark.slow  # an export: about 2 s here
def test_facefusion_layout_names_the_input_as_facefusion_feeds_it(tiny_gpen):
    exported = gpen_onnx(tiny_gpen, "tiny", layout="facefusion", check=False)
    model = onnx.load_from_string(exported.data)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]


@pytest.mark.slow  # an export: about 2 s here
def test_half_stores_fp16_weights_and_keeps_fp32_io(tiny_gpen):
    exported = gpen_onnx(tiny_gpen, "tiny", half=True)
    model = onnx.load_from_string(exported.data)
    kinds = {t.data_type for t in model.graph.initializer if len(t.dims) > 1}
    assert kinds == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert 0 < exported.difference <= TOLERANCE[True]


@pytest.mark.slow  # an export: about 2 s here
def test_a_file_that_differs_from_torch_is_refused_and_not_written(
    tmp_path, tiny_checkpoint, monkeypatch
):
    monkeypatch.setattr(
        "gpen_cli.models.onnx.networks.largest_difference", lambda *args, **kwargs: 0.25
    )
    out = tmp_path / "bad.onnx"
    result = CliRunner().invoke(app, ["export", str(tiny_checkpoint), "-o", str(out)])
    assert result.exit_code == 1
    assert "differs from PyTorch by 0.25 (more than 0.001)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    result = CliRunner().invoke(app, ["export", str(bad), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2
    assert str(bad) in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow  # exports GPEN-BFR-256 and ParseNet at 512 px: tens of seconds here
def test_onnxruntime_runtime_gives_the_official_photo(seeded_weights_dir):
    from test_official_pipeline import ReplayDetector, official, photo, psnr, within_one_level

    from gpen_cli.pipeline.restorer import FaceRestorer

    restorer = FaceRestorer(
        seeded_weights_dir / "GPEN-BFR-256.pth",
        ReplayDetector(),
        weights_dir=seeded_weights_dir,
        device="cpu",
        runtime="onnxruntime",
    )
    result = restorer.restore(photo("astronaut_320"))
    expected = official("astronaut_320_GPEN.png")
    assert psnr(result.image, expected) >= 50.0
    assert within_one_level(result.image, expected) >= 0.999


def test_runtime_setting_is_checked():
    from gpen_cli.core.config import ConfigError, RestoreConfig

    with pytest.raises(ConfigError, match="must be one of torch, onnxruntime"):
        RestoreConfig(runtime="tensorrt")
    with pytest.raises(ConfigError, match="excludes half"):
        RestoreConfig(runtime="onnxruntime", half=True)
    assert RestoreConfig(runtime="onnxruntime").runtime == "onnxruntime"
