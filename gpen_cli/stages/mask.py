"""Paste masks: where a restored face replaces the photo.

The official pipeline outlines each restored face with ParseNet face parsing (the network GPEN
and facexlib ship), keeps the labels its colour map paints white (skin, brows, eyes, glasses,
ears, nose, mouth, lips, hair, earrings and neck; not background, hat or cloth), zeroes a
26 px border of the 512 px map and feathers it with two Gaussian blurs. That is the default
here, computed the same way. `rect` is the official feathered square instead: no network, far
cheaper, and the face's surroundings (hair, neck) come from GPEN's crop too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from gpen_cli.core.devices import pick_dtype
from gpen_cli.models.parsenet import fused_head
from gpen_cli.weights.checkpoints import load_strict, read_state_dict, seeded

PARSING_INPUT_SIZE = 512
# The official colour map over the 19 CelebAMask-HQ labels: 255 counts as face. Label 14 is
# the hat, 18 the cloth; 0 the background.
FACE_LABELS = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17])
PARSING_LABELS = 19
# The published ParseNet (facexlib's defaults, as GPEN builds it at 512 px).
PARSENET_LAYOUT: dict[str, Any] = {
    "min_feat_size": 32,
    "base_ch": 64,
    "parsing_ch": PARSING_LABELS,
    "res_depth": 10,
    "ch_range": [32, 256],
}
# Post-processing, at the parsing resolution (512 px), as the official code does it.
_BORDER_PX = 26
_BLUR_KERNEL = (101, 101)
_BLUR_SIGMA = 4
# Faces per ParseNet forward: its 512 px activations are 64–128 MB per face and tensor, so
# bounded chunks keep memory flat whatever the number of faces in a photo. On a CPU one face
# a forward is as fast as two and holds the Solvay restore's peak under 3 GB (see
# docs/benchmarks.md); a GPU is kept busy by a few.
PARSING_CHUNK = {"cpu": 1, "cuda": 4}


class Masker(Protocol):
    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def feather(mask: np.ndarray) -> np.ndarray:
    """A 512 px {0, 1} map with its border zeroed and two Gaussian blurs, as float32.

    The official `mask_postprocess`: computed in float64 (the map arrives as uint8 / 255.),
    blurred twice with a 101 px kernel of sigma 4, then cast to float32.
    """
    soft = np.asarray(mask, dtype=np.float64).copy()
    soft[:_BORDER_PX, :] = 0
    soft[-_BORDER_PX:, :] = 0
    soft[:, :_BORDER_PX] = 0
    soft[:, -_BORDER_PX:] = 0
    soft = cv2.GaussianBlur(soft, _BLUR_KERNEL, _BLUR_SIGMA)
    soft = cv2.GaussianBlur(soft, _BLUR_KERNEL, _BLUR_SIGMA)
    return soft.astype(np.float32)


def labels_to_mask(labels: np.ndarray, size: int) -> np.ndarray:
    """A ParseNet label map (512×512) → the official paste mask at `size`×`size`."""
    mask = feather(np.isin(labels, FACE_LABELS))
    if size != mask.shape[0]:
        mask = cv2.resize(mask, (size, size))  # the official resize: bilinear
    return mask


@functools.lru_cache(maxsize=8)
def rect_mask(size: int) -> np.ndarray:
    """The official feathered square at `size`×`size` (float32 in [0, 1], read-only).

    A white square inset by 26 px in a 512 px map, anti-aliased, blurred as the parsing
    mask is, resized to the crop.
    """
    square = np.zeros((PARSING_INPUT_SIZE, PARSING_INPUT_SIZE), np.float32)
    far = PARSING_INPUT_SIZE - _BORDER_PX
    cv2.rectangle(square, (_BORDER_PX, _BORDER_PX), (far, far), 1.0, -1, cv2.LINE_AA)
    square = cv2.GaussianBlur(square, _BLUR_KERNEL, _BLUR_SIGMA)
    square = cv2.GaussianBlur(square, _BLUR_KERNEL, _BLUR_SIGMA)
    if size != PARSING_INPUT_SIZE:
        square = cv2.resize(square, (size, size))
    square.setflags(write=False)
    return square


class RectMasker:
    """The official feathered square, the same for every face."""

    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [rect_mask(face.shape[0]) for face in restored]


def parsing_input(faces: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 BGR crops → N×3×512×512 float32 RGB in [-1, 1], as the official FaceParse.

    Resized bilinearly to 512 px as uint8, then x / 255 * 2 - 1 in float64, then float32.
    """
    side = PARSING_INPUT_SIZE
    batch = np.stack([cv2.resize(face, (side, side)) for face in faces])[..., ::-1]
    return (batch / 255.0 * 2 - 1).astype(np.float32).transpose(0, 3, 1, 2)


def random_parsenet(seed: int, **layout: Any) -> torch.nn.Module:
    """facexlib's ParseNet at GPEN's size with seeded random weights (a registry random_init);
    `layout` narrows it (PARSENET_LAYOUT's keys), as the tests' light stand-in is."""
    with seeded(seed):
        return parsenet({**PARSENET_LAYOUT, **layout})


def parsenet(layout: Mapping[str, Any]) -> torch.nn.Module:
    """facexlib's ParseNet at GPEN's 512 px of the given layout."""
    from facexlib.parsing.parsenet import ParseNet

    side = PARSING_INPUT_SIZE
    return ParseNet(in_size=side, out_size=side, **layout)


def parsenet_layout(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """ParseNet's constructor arguments, read from its tensors as spandrel reads a network's:
    the widths from the convolutions' shapes, the depths from how many blocks there are. A
    file that is no ParseNet gets the published layout, which it then fails to load into,
    saying why."""
    weights = {k: v.shape for k, v in state.items() if k.endswith("conv2d.weight")}
    if "encoder.0.conv2d.weight" not in weights or "out_mask_conv.conv2d.weight" not in weights:
        return dict(PARSENET_LAYOUT)

    def blocks(part: str) -> int:
        found = {int(k.split(".")[1]) for k in weights if k.startswith(part + ".")}
        return max(found, default=-1) + 1

    # Every residual block's width is clipped to ch_range; the first layer's is not.
    clipped = [shape[0] for key, shape in weights.items() if key.count(".") == 4]
    clipped.append(weights["out_mask_conv.conv2d.weight"][1])
    return {
        "min_feat_size": PARSING_INPUT_SIZE >> (blocks("encoder") - 1),
        "base_ch": int(weights["encoder.0.conv2d.weight"][0]),
        "parsing_ch": int(weights["out_mask_conv.conv2d.weight"][0]),
        "res_depth": blocks("body"),
        "ch_range": [int(min(clipped)), int(max(clipped))],
    }


def is_parsenet(path: Path) -> bool:
    """Whether `path` holds ParseNet weights, by their key names."""
    state = read_state_dict(Path(path), "ParseNet face-parsing state dict")
    return any(key.startswith("out_mask_conv.") for key in state)


class ParsingMasker:
    """ParseNet face-parsing masks, batched in bounded chunks.

    Only the segmentation head runs: ParseNet also predicts a restored image, which the
    official pipeline computes and throws away. The checkpoint still loads strictly into the
    whole network, so a file with a wrong or missing layer is refused. On the CPU the head
    runs as fused oneDNN convolutions (gpen_cli/models/parsenet.py) unless `exact` asks for
    facexlib's layers as they are; runtime "onnxruntime" runs the head exported to ONNX.
    """

    def __init__(
        self,
        weights_path: Path,
        device: torch.device | str = "cpu",
        half: bool = False,
        chunk: int | None = None,
        exact: bool = False,
        runtime: str = "torch",
    ):
        self.device = torch.device(device)
        self.dtype = pick_dtype(self.device, half)
        self.chunk = max(1, int(chunk or PARSING_CHUNK.get(self.device.type, 1)))
        network = load_parsenet(weights_path)
        if runtime == "onnxruntime":  # the exported head in an ONNX Runtime session
            from gpen_cli.models.onnx.networks import parsenet_session

            self.dtype, self.head = torch.float32, parsenet_session(network, self.device)
            return
        # Folded from the FP32 weights, then cast: a BF16 head rounds each weight once.
        fused = None if exact or self.device.type != "cpu" else fused_head(network, self.dtype)
        self.head = fused or functools.partial(
            segmentation_logits,
            network.to(self.device, self.dtype, memory_format=torch.channels_last),
        )

    def labels(self, batch: torch.Tensor) -> torch.Tensor:
        """N×3×512×512 input → N×512×512 label maps (argmax over the 19 classes)."""
        return self.head(batch).argmax(dim=1)

    @torch.inference_mode()
    def __call__(self, restored: Sequence[np.ndarray]) -> list[np.ndarray]:
        masks: list[np.ndarray] = []
        for start in range(0, len(restored), self.chunk):
            faces = restored[start : start + self.chunk]
            batch = torch.from_numpy(parsing_input(faces)).to(self.device, self.dtype)
            labels = self.labels(batch.contiguous(memory_format=torch.channels_last))
            for face, label_map in zip(faces, labels.cpu().numpy(), strict=True):
                masks.append(labels_to_mask(label_map, face.shape[0]))
        return masks


def load_parsenet(weights_path: Path) -> torch.nn.Module:
    """facexlib's ParseNet with the weights of `weights_path` (loaded strictly into the layout
    its tensors have), in eval mode, its pass-through layers made true pass-throughs."""
    what = "ParseNet face-parsing state dict"
    state = read_state_dict(weights_path, what)
    network = parsenet(parsenet_layout(state))
    load_strict(network, state, str(weights_path), what)
    return _without_identity_copies(network.eval().requires_grad_(False))


def segmentation_logits(network: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """facexlib ParseNet's segmentation head as its own `forward` computes it: N×19×S×S."""
    features = network.encoder(batch)
    return network.out_mask_conv(network.decoder(features + network.body(features)))


def _without_identity_copies(network: torch.nn.Module) -> torch.nn.Module:
    """ParseNet with its pass-through layers made true pass-throughs.

    facexlib writes a 'none' normalisation or activation as `x * 1.0`: a full copy of a
    512 px activation each time, about a tenth of the network's time. `nn.Identity` gives the
    same values without the copy.
    """
    from facexlib.parsing.parsenet import NormLayer, ReluLayer

    for module in network.modules():
        if isinstance(module, NormLayer) and module.norm_type == "none":
            module.norm = torch.nn.Identity()
        elif isinstance(module, ReluLayer) and not isinstance(module.func, torch.nn.Module):
            module.func = torch.nn.Identity()
    return network
