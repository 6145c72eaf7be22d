"""Paste masks: the feathered square, and face parsing when its weights are present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpen_cli.errors import CheckpointError, GpenError
from gpen_cli.stages.mask import ParsingMasker, RectMasker, make_masker
from gpen_cli.stages.paste import default_mask
from gpen_cli.weights import weight_path


@pytest.fixture(scope="module")
def parsenet_file(tmp_path_factory):
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("parsing") / "parsing_parsenet.pth"
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), path)
    return path


def test_rect_mask_is_the_official_square():
    faces = [np.zeros((256, 256, 3), np.uint8)] * 2
    masks = RectMasker()(faces)
    assert len(masks) == 2 and np.array_equal(masks[0], default_mask(256))


def test_parsing_masks_stay_inside_the_square(parsenet_file):
    masker = ParsingMasker(parsenet_file)
    faces = [
        np.random.default_rng(i).integers(0, 256, (256, 256, 3), dtype=np.uint8) for i in range(1)
    ]
    masks = masker(faces)
    assert [m.shape for m in masks] == [(256, 256)]
    for mask in masks:
        assert mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
        assert np.all(mask <= default_mask(256) + 1e-6)
    assert masker([]) == []


def test_auto_uses_parsing_only_when_its_weights_are_present(tmp_path, parsenet_file):
    assert isinstance(make_masker("auto", tmp_path), RectMasker)
    target = weight_path("parsenet", tmp_path)
    target.write_bytes(parsenet_file.read_bytes())
    assert isinstance(make_masker("auto", tmp_path), ParsingMasker)
    assert isinstance(make_masker("rect", tmp_path), RectMasker)
    with pytest.raises(GpenError, match="unknown mask"):
        make_masker("blob", tmp_path)


def test_wrong_parsing_weights_are_named(tmp_path):
    bogus = tmp_path / "parsing_parsenet.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bogus)
    with pytest.raises(CheckpointError, match="not a ParseNet face-parsing state dict"):
        ParsingMasker(bogus)
