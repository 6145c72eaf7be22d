"""The GPEN forward stage: aligned crops in, restored crops out, in fixed-size batches."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return resolved


def default_batch_size(device: torch.device, size: int) -> int:
    """Enough faces to keep the device busy without running out of memory."""
    if device.type == "cuda":
        return max(1, 16 * (512 // max(size, 256)) ** 2) if size <= 512 else 4
    return 4


def pick_dtype(device: torch.device, half: bool | None) -> torch.dtype:
    """FP16 on CUDA (on by default there), BF16 on a CPU that asks for it, else FP32."""
    if half is None:
        half = device.type == "cuda"
    if not half:
        return torch.float32
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def crops_to_tensor(
    crops: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """uint8 BGR H×W×3 crops → N×3×H×W RGB in [-1, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(crops)[..., ::-1]))
    batch = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return batch.to(dtype).div_(127.5).sub_(1.0)


def tensor_to_crops(batch: torch.Tensor) -> list[np.ndarray]:
    """N×3×H×W RGB in [-1, 1] → uint8 BGR crops, rounded to the nearest level."""
    pixels = ((batch.float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1]
    return [np.ascontiguousarray(face) for face in array]


class GpenForward:
    """Runs a face model over lists of crops of its input size.

    Any module mapping N×3×S×S RGB in [-1, 1] to the same works (a tuple output is read
    as `(image, ...)`, as the official generator returns). The last batch is padded to the
    full batch size so a compiled model always sees one shape.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        size: int | None = None,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        half: bool | None = None,
        compile_model: bool = False,
        exact: bool = False,
    ):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.size = int(size or getattr(model, "size", 0))
        if self.size <= 0:
            raise ValueError("the face model has no .size attribute: pass size= explicitly")
        self.dtype = pick_dtype(self.device, half)
        self.batch_size = batch_size or default_batch_size(self.device, self.size)
        if hasattr(model, "set_fast"):
            model.set_fast(not exact)
        self.model = model.eval().to(self.device, self.dtype)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.compiled = compile_model and self._try_compile()

    def _try_compile(self) -> bool:
        try:
            mode = "max-autotune-no-cudagraphs" if self.device.type == "cuda" else "default"
            compiled = torch.compile(self.model, mode=mode, dynamic=False)
            probe = torch.zeros(
                self.batch_size, 3, self.size, self.size, device=self.device, dtype=self.dtype
            )
            with torch.inference_mode():
                compiled(probe)
        except Exception as exc:  # any backend failure: run eager, say why once
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning("torch.compile is not usable here, running eager: %s", reason[:200])
            return False
        self.model = compiled
        return True

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.model(batch)
        return out[0] if isinstance(out, (tuple, list)) else out

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        restored: list[np.ndarray] = []
        for start in range(0, len(crops), self.batch_size):
            chunk = list(crops[start : start + self.batch_size])
            count = len(chunk)
            if self.compiled and count < self.batch_size:
                chunk += [chunk[-1]] * (self.batch_size - count)
            batch = crops_to_tensor(chunk, self.device, self.dtype)
            if self.device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            restored += tensor_to_crops(self._run(batch)[:count])
        return restored
