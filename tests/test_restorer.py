"""FaceRestorer end to end on real photos: an identity model must give the photo back."""

from __future__ import annotations

import socket
import threading

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_path, real_weights

from gpen_cli.core.config import RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.pipeline.restorer import FaceRestorer
from gpen_cli.stages.faces import Face
from gpen_cli.stages.mask import rect_mask


class Identity(torch.nn.Module):
    """A "restorer" that returns its input: what comes out must be the photo."""

    def __init__(self, size: int = 512):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Darken(Identity):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, -1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def weights_dir(pipeline_weights_dir):
    return pipeline_weights_dir


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(photo_path(name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture
def identity_restorer(weights_dir):
    return FaceRestorer(
        Identity(512), "retinaface-mobile", weights_dir=weights_dir, device="cpu", mask="rect"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["group", "portrait"],
)
def test_identity_model_gives_the_photo_back(identity_restorer, name):
    image = photo(name)
    result = identity_restorer.restore(image)
    assert result.faces, f"no face found in {name}"
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    assert psnr(image, result.image) >= 40.0


@pytest.mark.slow
def test_real_detector_finds_the_faces(identity_restorer):
    real_weights("retinaface-mobile")
    assert len(identity_restorer.restore(photo("group")).faces) == 3  # as the official finds
    assert len(identity_restorer.restore(photo("portrait")).faces) == 1


@pytest.mark.slow
def test_pixels_outside_every_pasted_region_are_unchanged(weights_dir):
    image = photo("group")
    restorer = FaceRestorer(
        Darken(256), "retinaface-mobile", weights_dir=weights_dir, device="cpu", mask="rect"
    )
    prepared = restorer.prepare(image)
    result = restorer.finish(prepared, restorer.forward(prepared.model_inputs))
    footprint = np.zeros(image.shape[:2], np.float32)
    for alignment in prepared.alignments:
        warped = cv2.warpAffine(
            rect_mask(256), alignment.inverse, image.shape[1::-1], flags=cv2.INTER_LINEAR
        )
        footprint = np.maximum(footprint, warped)
    outside = cv2.dilate((footprint > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert outside.mean() > 0.3  # a third of the group photo lies outside its faces' squares
    assert np.array_equal(result.image[outside], image[outside])
    changed = np.any(result.image != image, axis=2)
    assert changed[~outside].mean() > 0.2, "the faces were not pasted"


class OneFace:
    """A detector that always reports one face at fixed landmarks."""

    def __init__(self, landmarks: np.ndarray):
        self.landmarks = landmarks

    def detect(self, image: np.ndarray) -> list[Face]:
        x0, y0 = self.landmarks.min(0) - 40
        x1, y1 = self.landmarks.max(0) + 40
        return [Face(np.array([x0, y0, x1, y1]), 0.99, self.landmarks.copy())]


LANDMARKS = np.array([[90.0, 100.0], [130.0, 100.0], [110.0, 125.0], [95.0, 148.0], [125.0, 148.0]])


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 2)


def test_fidelity_weight_zero_keeps_the_input_crop():
    image = textured(240, 220)
    ignored = FaceRestorer(
        Darken(128), OneFace(LANDMARKS), device="cpu", fidelity_weight=0.0, mask="rect"
    )
    identity = FaceRestorer(Identity(128), OneFace(LANDMARKS), device="cpu", mask="rect")
    assert np.array_equal(ignored.restore(image).image, identity.restore(image).image)
    darkened = FaceRestorer(Darken(128), OneFace(LANDMARKS), device="cpu", mask="rect").restore(
        image
    )
    half = FaceRestorer(
        Darken(128), OneFace(LANDMARKS), device="cpu", fidelity_weight=0.5, mask="rect"
    )
    assert darkened.image.mean() < half.restore(image).image.mean() - 2 < image.mean() - 4


def test_16_bit_photo_keeps_its_depth_and_untouched_pixels():
    image = textured(300, 300).astype(np.uint16) * 257 + 3
    result = FaceRestorer(Identity(128), OneFace(LANDMARKS), device="cpu", mask="rect").restore(
        image
    )
    assert result.image.dtype == np.uint16
    unchanged = np.all(result.image == image, axis=2)
    # The 128 px crop spans about 190 px of this photo around the face centre (110, 125).
    assert unchanged[:, 240:].all() and unchanged[240:, :].all() and not unchanged.all()
    assert np.abs(result.image.astype(np.int64) - image).mean() <= 3 * 257


def test_short_edge_pastes_back_at_the_input_size():
    image = textured(300, 260)
    restorer = FaceRestorer(
        Identity(128), OneFace(LANDMARKS / 2), device="cpu", short_edge=130, mask="rect"
    )
    result = restorer.restore(image)
    assert result.image.shape == image.shape
    # The detector saw the halved image; the record maps its landmarks back to the input.
    assert np.allclose(np.array(result.faces[0].landmarks), LANDMARKS, atol=0.05)
    unchanged = np.all(result.image == image, axis=2)
    assert unchanged[240:, :].all() and not unchanged.all()
    assert psnr(image, result.image) > 25


def test_aligned_crop_is_resized_and_restored():
    crop = textured(200, 200)
    result = FaceRestorer(Identity(128), aligned=True, device="cpu").restore(crop)
    assert result.image.shape == (128, 128, 3)
    # Resized bilinearly as the official code; the 8-bit conversion truncates, so an
    # identity model gives each level back or one below it.
    difference = cv2.resize(crop, (128, 128)).astype(int) - result.image
    assert difference.min() >= 0 and difference.max() <= 1


def test_model_size_must_be_known():
    with pytest.raises(ValueError, match="size"):
        FaceRestorer(torch.nn.Identity(), OneFace(LANDMARKS), device="cpu", mask="rect")
    restorer = FaceRestorer(
        torch.nn.Identity(), OneFace(LANDMARKS), size=128, device="cpu", mask="rect"
    )
    assert restorer.size == 128


def test_bad_options_are_one_line_errors():
    with pytest.raises(GpenError, match="fidelity_weight: must be between 0 and 1, got 1.5"):
        FaceRestorer(Identity(128), OneFace(LANDMARKS), fidelity_weight=1.5)
    with pytest.raises(GpenError, match="no such file, and unknown GPEN model"):
        FaceRestorer("no-such-model.pth", OneFace(LANDMARKS))


def test_names_match_any_case_and_typos_get_a_suggestion(tmp_path):
    from gpen_cli.core.names import match_name
    from gpen_cli.weights.registry import get_spec

    assert get_spec("gpen-bfr-512").name == "GPEN-BFR-512"
    with pytest.raises(GpenError, match="did you mean retinaface-mobile"):
        FaceRestorer(Identity(128), "retinaface-mobil", device="cpu")
    with pytest.raises(GpenError, match="did you mean fan"):
        FaceRestorer(Identity(128), OneFace(LANDMARKS), landmarks="fan2", device="cpu")
    with pytest.raises(GpenError, match="did you mean GPEN-BFR-512"):
        FaceRestorer("GPEN-BFR-51", OneFace(LANDMARKS), weights_dir=tmp_path)
    assert match_name("YUNET", ["yunet"], "detector") == "yunet"
    with pytest.raises(GpenError, match="unknown detector 'dlib'; known: yunet"):
        match_name("dlib", ["yunet"], "detector")
    assert not list(tmp_path.iterdir())  # refused before anything was fetched


def test_fetch_weights_names_a_missing_file_and_builds_nothing(
    tiny_checkpoint, tmp_path, monkeypatch, seeded_detector_dir
):
    """What the Ray engine's driver checks: every file the configuration needs is there or
    fetched; the parsing model missing, with no network, is one line naming it."""
    from gpen_cli.pipeline.resolve import fetch_weights
    from gpen_cli.weights import download

    folder = tmp_path / "weights"
    folder.mkdir()
    seeded = seeded_detector_dir / "detection_mobilenet0.25_Final.pth"
    (folder / "detection_mobilenet0.25_Final.pth").symlink_to(seeded)
    with socket.socket() as closed:  # a port nothing listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv(download.BASE_URL_ENV, f"http://127.0.0.1:{closed.getsockname()[1]}/")
    monkeypatch.setattr(FaceRestorer, "__init__", None)
    settings = RestoreConfig(
        model=str(tiny_checkpoint), detector="retinaface-mobile", weights_dir=folder
    )
    with pytest.raises(GpenError, match="parsing_parsenet.pth not found in .*download"):
        fetch_weights(settings)
    fetch_weights(settings.but(mask="rect"))  # all there: nothing to say
    with pytest.raises(GpenError, match="retinaface-resnet50|Resnet50"):
        fetch_weights(settings.but(mask="rect", detector="retinaface-resnet50"))


class Overlaps:
    """Counts how many of the networks it wraps run at once, across threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.detecting = threading.Event()

    def __enter__(self):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)

    def __exit__(self, *exc):
        with self.lock:
            self.running -= 1


class WatchedFace(OneFace):
    def __init__(self, landmarks, overlaps: Overlaps):
        super().__init__(landmarks)
        self.overlaps = overlaps

    def detect(self, image):
        with self.overlaps:
            self.overlaps.detecting.set()
            return super().detect(image)


OVERLAPS = Overlaps()  # a global: the engine runs a deep copy of the model it is given


class WatchedIdentity(Identity):
    """Runs until a detection starts elsewhere, or half a second has passed: enough for the
    engine's prepare threads to detect the next photos meanwhile, if nothing stops them."""

    def forward(self, x):
        with OVERLAPS:
            OVERLAPS.detecting.clear()
            OVERLAPS.detecting.wait(timeout=0.5)
            return x


@pytest.mark.slow
def test_on_a_cpu_detection_waits_while_the_generator_runs(tmp_path):
    """Two networks at once would run twice as many intra-op threads as there are cores."""
    from gpen_cli.batch import GivenItems, PhotoJob, ThreadEngine
    from gpen_cli.batch.scan import Task

    OVERLAPS.__init__()
    restorer = FaceRestorer(
        WatchedIdentity(128), WatchedFace(LANDMARKS, OVERLAPS), device="cpu",
        mask="rect", batch_size=1,
    )  # fmt: skip
    tasks = []
    for index in range(4):
        source = tmp_path / f"p{index}.png"
        cv2.imwrite(str(source), textured(240, 220, seed=index))
        tasks.append(Task(source, tmp_path / "out" / source.name))
    outcome = ThreadEngine(restorer, workers=2).run(PhotoJob(GivenItems(tasks)))
    assert [entry.status for entry in outcome.entries] == ["ok"] * 4
    assert OVERLAPS.most == 1
