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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """The exports the onnxruntime runtime keeps go to a folder of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))


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


@pytest.mark.slow  # exports GPEN-BFR-256 and ParseNet at 512 px: seconds here
def test_onnxruntime_runtime_gives_the_official_photo(seeded_weights_dir, monkeypatch):
    from test_official_pipeline import ReplayDetector, official, photo, psnr, within_one_level

    from gpen_cli.models.onnx import networks
    from gpen_cli.pipeline.restorer import FaceRestorer

    # The export's own check against torch is the next test's (on the narrow ParseNet): run
    # at the published width it would cost 15 s of facexlib's layers here.
    export = networks.parsenet_onnx
    monkeypatch.setattr(networks, "parsenet_onnx", lambda net: export(net, check=False))
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


def test_parsenet_export_is_checked_against_facexlibs_layers(light_parsenet_file):
    from gpen_cli.models.onnx import networks
    from gpen_cli.stages.mask import load_parsenet

    network = load_parsenet(light_parsenet_file)
    exported = networks.parsenet_onnx(network)
    assert 0 <= exported.difference <= networks.TOLERANCE[False]
    assert exported.metadata["kind"] == "parsing"


def test_runtime_setting_is_checked():
    from gpen_cli.core.config import ConfigError, RestoreConfig

    with pytest.raises(ConfigError, match="must be one of torch, onnxruntime"):
        RestoreConfig(runtime="tensorrt")
    with pytest.raises(ConfigError, match="excludes half"):
        RestoreConfig(runtime="onnxruntime", half=True)
    assert RestoreConfig(runtime="onnxruntime").runtime == "onnxruntime"


@pytest.mark.slow  # one export of the tiny GPEN: seconds here
def test_a_second_runtime_start_exports_nothing(tiny_gpen, monkeypatch):
    from test_restorer import LANDMARKS, OneFace, textured

    from gpen_cli.models.onnx import networks
    from gpen_cli.models.onnx.cache import cache_folder
    from gpen_cli.pipeline.restorer import FaceRestorer

    exports = []
    export = networks.export_checked
    monkeypatch.setattr(
        networks, "export_checked", lambda *a, **k: exports.append(1) or export(*a, **k)
    )
    image = textured(240, 220)

    def restored() -> np.ndarray:
        restorer = FaceRestorer(
            tiny_gpen, OneFace(LANDMARKS), device="cpu", mask="rect", runtime="onnxruntime"
        )
        return restorer.restore(image).image

    first = restored()
    (kept,) = cache_folder().glob("gpen-64-*.onnx")
    assert np.array_equal(restored(), first) and len(exports) == 1
    assert list(cache_folder().iterdir()) == [kept]


def test_a_damaged_kept_export_is_made_again_never_run(tmp_path):
    from gpen_cli.models.onnx.cache import cached_export

    made = []

    def export() -> bytes:
        made.append(1)
        return b"an ONNX file" * 100

    data = cached_export("gpen-64", "k", export, tmp_path)
    assert cached_export("gpen-64", "k", export, tmp_path) == data and len(made) == 1
    (kept,) = tmp_path.iterdir()
    kept.write_bytes(data[: len(data) // 2])  # as a copy cut short would leave it
    assert cached_export("gpen-64", "k", export, tmp_path) == data and len(made) == 2
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [data]
    assert cached_export("gpen-64", "other", export, tmp_path) == data and len(made) == 3


@pytest.mark.slow  # exports GPEN-BFR-256: a few seconds here
def test_exported_gpen_256_matches_torch_on_the_official_crops(seeded_weights_dir):
    from test_official_pipeline import PHOTOS, official

    from gpen_cli.models import load_gpen
    from gpen_cli.models.onnx.networks import largest_difference
    from gpen_cli.stages.forward import crops_to_tensor

    model = load_gpen(seeded_weights_dir / "GPEN-BFR-256.pth")  # the official formulation
    exported = gpen_onnx(model, "GPEN-BFR-256", check=False)
    crops = [official(f"{stem}_face00_in.png") for stem in PHOTOS]
    faces = crops_to_tensor(crops, torch.device("cpu"), torch.float32)
    assert faces.shape == (2, 3, 256, 256)
    assert largest_difference(exported.data, model, faces) <= 1e-3


def test_bench_times_the_runtime_against_the_torch_faithful_baseline():
    from gpen_cli.bench.workload import config_label, plan_configs
    from gpen_cli.core.config import RestoreConfig

    base = RestoreConfig(mask="rect", runtime="onnxruntime")
    baseline, timed = plan_configs(base, [2])
    assert (baseline.runtime, baseline.exact) == ("torch", True)
    assert timed == base.but(batch_size=2)
    assert config_label(timed, torch.float32, False) == "onnxruntime fp32 b2 eager"
