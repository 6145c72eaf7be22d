"""Paste masks: the official face-parsing mask (the default) and the official square."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import LIGHT_PARSENET

from gpen_cli.core.config import ConfigError, MaskKind, RestoreConfig
from gpen_cli.core.errors import CheckpointError, WeightsMissingError
from gpen_cli.pipeline.resolve import load_masker
from gpen_cli.stages.mask import (
    ParsingMasker,
    RectMasker,
    labels_to_mask,
    parsing_input,
    rect_mask,
)

# face_parse/face_parsing.py's MASK_COLORMAP, written out: the official map under test.
OFFICIAL_COLORMAP = [0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255]
OFFICIAL_COLORMAP += [255, 255, 0]


def official_mask(labels: np.ndarray, size: int) -> np.ndarray:
    """face_enhancement.py: tenor2mask, / 255., mask_postprocess, resize — written as there."""
    colour = np.zeros(labels.shape)
    for index, value in enumerate(OFFICIAL_COLORMAP):
        colour[labels == index] = value
    mask = colour.astype(np.uint8) / 255.0
    thres = 26
    mask[:thres, :] = 0
    mask[-thres:, :] = 0
    mask[:, :thres] = 0
    mask[:, -thres:] = 0
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    return cv2.resize(mask.astype(np.float32), (size, size))


@pytest.mark.parametrize("label", range(19))
def test_each_label_alone_gives_the_official_mask(label: int) -> None:
    labels = np.zeros((512, 512), np.int64)
    labels[60:450, 80:430] = label  # a face-sized blob of one label
    expected = official_mask(labels, 256)
    np.testing.assert_array_equal(labels_to_mask(labels, 256), expected)
    face = label in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17)
    assert (expected.max() > 0.99) == face


@pytest.mark.parametrize("size", [256, 512, 1024])
def test_mixed_label_maps_match_the_official_post_processing(size: int) -> None:
    rng = np.random.default_rng(size)
    # Blocks of random labels, so the map has borders between all kinds of regions.
    labels = np.kron(rng.integers(0, 19, (16, 16)), np.ones((32, 32), np.int64))
    mask = labels_to_mask(labels, size)
    assert mask.dtype == np.float32 and mask.shape == (size, size)
    np.testing.assert_array_equal(mask, official_mask(labels, size))
    edge = 26 * size // 512
    assert mask[: edge // 2].max() < 0.05  # the zeroed, feathered border


def test_rect_mask_is_the_official_feathered_square() -> None:
    square = np.zeros((512, 512), np.float32)
    cv2.rectangle(square, (26, 26), (486, 486), (1, 1, 1), -1, cv2.LINE_AA)
    square = cv2.GaussianBlur(cv2.GaussianBlur(square, (101, 101), 4), (101, 101), 4)
    np.testing.assert_array_equal(rect_mask(512), square)
    np.testing.assert_array_equal(rect_mask(256), cv2.resize(square, (256, 256)))
    assert rect_mask(512) is rect_mask(512) and not rect_mask(512).flags.writeable
    masks = RectMasker()([np.zeros((256, 256, 3), np.uint8)] * 2)
    assert len(masks) == 2 and masks[0] is rect_mask(256)


def test_parsing_input_is_the_official_conversion() -> None:
    face = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    official = cv2.resize(face, (512, 512))[..., ::-1] / 255.0 * 2 - 1
    expected = torch.from_numpy(official.transpose(2, 0, 1).copy()).float().numpy()
    np.testing.assert_array_equal(parsing_input([face])[0], expected)


def test_parsing_masks_equal_the_whole_network_run_face_by_face(light_parsenet_file) -> None:
    from facexlib.parsing.parsenet import ParseNet

    reference = ParseNet(in_size=512, out_size=512, parsing_ch=19, **LIGHT_PARSENET)
    reference.load_state_dict(torch.load(light_parsenet_file))
    reference.eval()
    faces = [
        np.random.default_rng(i).integers(0, 256, (256, 256, 3), dtype=np.uint8) for i in range(2)
    ]
    masker = ParsingMasker(light_parsenet_file, chunk=1)  # two chunks
    masks = masker(faces)
    assert [m.shape for m in masks] == [(256, 256)] * 2
    for face, mask in zip(faces, masks, strict=True):
        with torch.no_grad():
            out_mask, _ = reference(torch.from_numpy(parsing_input([face])))
        labels = out_mask.argmax(dim=1)[0].numpy()
        np.testing.assert_allclose(mask, official_mask(labels, 256), atol=1e-3)
    assert masker([]) == []


def test_parsing_is_the_default_and_never_silently_replaced(
    tmp_path, light_parsenet_file, monkeypatch
) -> None:
    monkeypatch.setenv("GPEN_WEIGHTS_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    default = RestoreConfig(weights_dir=tmp_path)
    assert default.mask is MaskKind.PARSING
    with pytest.raises(WeightsMissingError, match="parsing_parsenet.pth"):
        load_masker(default, "cpu")
    (tmp_path / "parsing_parsenet.pth").write_bytes(light_parsenet_file.read_bytes())
    assert isinstance(load_masker(default, "cpu"), ParsingMasker)
    assert isinstance(load_masker(default.but(mask="RECT"), "cpu"), RectMasker)
    with pytest.raises(ConfigError, match="blob"):
        default.but(mask="blob")


def test_wrong_parsing_weights_are_named(tmp_path) -> None:
    bogus = tmp_path / "parsing_parsenet.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bogus)
    with pytest.raises(CheckpointError, match="not a ParseNet face-parsing state dict"):
        ParsingMasker(bogus)


def test_parsing_runs_in_bounded_chunks_whatever_the_face_count(light_parsenet_file, monkeypatch):
    # Memory follows the chunk, not the photo: 29 faces never become one 29-face batch.
    masker = ParsingMasker(light_parsenet_file, chunk=2)
    seen = []

    def labels(batch):
        seen.append(batch.shape[0])
        return torch.zeros(batch.shape[0], 512, 512, dtype=torch.long)

    monkeypatch.setattr(masker, "labels", labels)
    masks = masker([np.zeros((64, 64, 3), np.uint8)] * 5)
    assert seen == [2, 2, 1] and len(masks) == 5
    assert all(mask.shape == (64, 64) and mask.max() == 0 for mask in masks)


def test_parsenet_layout_is_read_from_the_tensors(light_parsenet_file, tmp_path) -> None:
    from gpen_cli.stages.mask import load_parsenet, parsenet, parsenet_layout, random_parsenet

    published = random_parsenet(0).state_dict()
    rebuilt = parsenet(parsenet_layout(published)).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in published.items()}
    narrow = load_parsenet(light_parsenet_file)
    assert narrow.encoder[0].conv2d.out_channels == LIGHT_PARSENET["base_ch"]
    assert len(narrow.body) == LIGHT_PARSENET["res_depth"]
    broken = dict(published)
    del broken["body.3.conv2.conv2d.weight"]  # a block with a layer missing: refused, not guessed
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="broken.pth: not a ParseNet"):
        load_parsenet(tmp_path / "broken.pth")
