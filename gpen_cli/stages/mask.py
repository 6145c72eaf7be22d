"""Paste masks: where a restored face replaces the photo.

A face-parsing network (facexlib's ParseNet) outlines skin, eyes, brows, nose, mouth and ears
so hair, hats and background stay the photo's own; without its weights a feathered square
(the official default) does the job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from gpen_cli.checkpoints import load_strict, read_state_dict
from gpen_cli.errors import GpenError
from gpen_cli.stages.forward import crops_to_tensor
from gpen_cli.stages.paste import default_mask

logger = logging.getLogger(__name__)

PARSING_INPUT_SIZE = 512
# CelebAMask-HQ labels 1..12: skin, nose, glasses, eyes, brows, ears, mouth, lips.
FACE_LABELS = np.arange(1, 13)
MASK_CHOICES = ("auto", "parsing", "rect")


class Masker(Protocol):
    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class RectMasker:
    """The official feathered square, the same for every face."""

    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [default_mask(face.shape[0]) for face in restored]


class ParsingMasker:
    """Face-parsing masks, feathered and kept inside the feathered square."""

    def __init__(self, weights_path: Path, device: torch.device | str = "cpu"):
        from facexlib.parsing.parsenet import ParseNet

        self.device = torch.device(device)
        network = ParseNet(in_size=PARSING_INPUT_SIZE, out_size=PARSING_INPUT_SIZE, parsing_ch=19)
        what = "ParseNet face-parsing state dict"
        load_strict(network, read_state_dict(weights_path, what), str(weights_path), what)
        self.network = network.eval().requires_grad_(False).to(self.device)

    @torch.inference_mode()
    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not restored:
            return []
        side = PARSING_INPUT_SIZE
        batch = crops_to_tensor(
            [cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR) for face in restored],
            self.device,
            torch.float32,
        )
        labels = self.network(batch)[0].argmax(dim=1).cpu().numpy()
        masks = []
        for face, label in zip(restored, labels, strict=True):
            mask = np.isin(label, FACE_LABELS).astype(np.float32)
            mask = cv2.GaussianBlur(mask, (101, 101), 11)
            mask = cv2.GaussianBlur(mask, (101, 101), 11)
            size = face.shape[0]
            if size != side:
                mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
            masks.append(np.clip(mask, 0.0, 1.0) * default_mask(size))
        return masks


def make_masker(choice: str = "auto", weights_dir: Path | None = None, device="cpu") -> Masker:
    """`auto`: parsing when its weights are already in the weights folder, else the square."""
    from gpen_cli.weights import ensure_weight, weight_path

    if choice not in MASK_CHOICES:
        raise GpenError(f"unknown mask {choice!r}; choose one of: {', '.join(MASK_CHOICES)}")
    if choice == "rect":
        return RectMasker()
    if choice == "auto":
        path = weight_path("parsenet", weights_dir)
        if not path.is_file():
            logger.info("face-parsing weights absent (%s): using the feathered square mask", path)
            return RectMasker()
    else:
        path = ensure_weight("parsenet", weights_dir)
    return ParsingMasker(path, device)
