"""The GPEN forward stage: aligned crops in, restored crops out, in fixed-size batches."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from gpen_cli.core.devices import (
    compile_mode,
    default_batch_size,
    pick_device,
    pick_dtype,
    use_channels_last,
)
from gpen_cli.core.errors import GpenError
from gpen_cli.models import FullGenerator, copy_gpen

logger = logging.getLogger(__name__)


def pad_batch(chunk: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """`chunk` filled up to `batch_size` with copies of its last crop: one shape to compile."""
    return list(chunk) + [chunk[-1]] * (batch_size - len(chunk))


def crops_to_tensor(
    crops: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """uint8 BGR H×W×3 crops → N×3×H×W RGB in [-1, 1].

    In the official order of operations (x / 255, then (x - 0.5) / 0.5, in FP32), so the
    generator sees bit for bit the input the official code gives it.
    """
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(crops)[..., ::-1]))
    batch = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return batch.float().div_(255.0).sub_(0.5).div_(0.5).to(dtype)


def tensor_to_crops(batch: torch.Tensor) -> list[np.ndarray]:
    """N×3×H×W RGB in [-1, 1] → uint8 BGR crops, as the official code converts them.

    x * 0.5 + 0.5, clipped to [0, 1], times 255, then truncated (not rounded) to uint8: a
    rounding conversion would be a better estimate, but it is not the official output.
    """
    pixels = batch.float().mul(0.5).add_(0.5).clamp_(0.0, 1.0).mul_(255.0).to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1]
    return [np.ascontiguousarray(face) for face in array]


def ready_to_run(model: nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Can `model` run as it is: in eval mode, its tensors on `device` in `dtype`?

    Parameters that require gradients do not matter: the forward runs in inference mode.
    """
    if any(module.training for module in model.modules()):
        return False
    device = torch.empty(0, device=device).device  # "cuda" names the tensors' "cuda:0"
    tensors = [*model.parameters(), *model.buffers()]
    return all(t.device == device and t.dtype == dtype for t in tensors if t.is_floating_point())


def model_to_run(
    model: nn.Module, *, exact: bool, device: torch.device, dtype: torch.dtype
) -> nn.Module:
    """`model` itself when it already is what the run needs, else a copy that is.

    "What the run needs": a GPEN generator in the formulation `exact` names, any module in
    eval mode, its weights on `device` in `dtype`.

    The caller's module is never changed (no `.to()`, `.eval()`, nor choice of formulation
    made on it): a caller may share one generator between restorers, or keep using it.
    A GPEN generator in the other formulation is rebuilt from its state dict (`copy_gpen`),
    any other module is deep-copied once; either copy costs the weights' memory again, which
    callers avoid by loading the generator as it will run (`load_gpen(fast=not exact)`).
    """
    if isinstance(model, FullGenerator):
        if model.fast != exact and ready_to_run(model, device, dtype):
            return model
        return copy_gpen(model, fast=not exact, device=device, dtype=dtype)
    if ready_to_run(model, device, dtype):
        return model
    return copy.deepcopy(model).eval().requires_grad_(False).to(device, dtype)


def onnx_generator(model: nn.Module, device: torch.device):
    """A GPEN generator as an ONNX Runtime session called like the module (see
    gpen_cli/models/onnx); other modules cannot be exported this way and are refused."""
    if not isinstance(model, FullGenerator):
        raise GpenError(
            f"the onnxruntime runtime runs GPEN generators only, not a {type(model).__name__}"
        )
    from gpen_cli.models.onnx.networks import gpen_session

    return gpen_session(model, device)


class NonFiniteOutputError(GpenError):
    """The model returned NaN or infinity: the photo fails rather than get black faces."""


class GpenForward:
    """Runs a face model over lists of crops of its input size.

    Any module mapping N×3×S×S RGB in [-1, 1] to the same works (a tuple output is read
    as `(image, ...)`, as the official generator returns). With `compile_model` the last
    batch is padded to the full batch size so the compiled graph always sees one shape.
    `exact` runs a GPEN generator in the official formulation, else with the fast kernels;
    the module handed in is left untouched (see `model_to_run`). Runtime "onnxruntime"
    exports a GPEN generator to ONNX and runs it in ONNX Runtime instead (FP32, eager).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        size: int | None = None,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        half: bool = False,
        compile_model: bool = False,
        exact: bool = False,
        source: str = "the face model",
        runtime: str = "torch",
    ):
        self.source = source  # named when the model's output is unusable
        self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.size = int(size or getattr(model, "size", 0))
        if self.size <= 0:
            raise ValueError("the face model has no .size attribute: pass size= explicitly")
        self.dtype = pick_dtype(self.device, half)
        self.batch_size = batch_size or default_batch_size(self.device, self.size)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        self.memory_format = (
            torch.channels_last
            if use_channels_last(self.device, exact)
            else torch.contiguous_format
        )
        if runtime == "onnxruntime":  # the generator exported, in an ONNX Runtime session
            self.model, self.compiled = onnx_generator(model, self.device), False
            self.memory_format = torch.contiguous_format
            return
        self.model = model_to_run(model, exact=exact, device=self.device, dtype=self.dtype)
        self.compiled = compile_model and self._try_compile()

    def _try_compile(self) -> bool:
        """torch.compile the model and run it once; on any failure stay eager, said in one line."""
        try:
            compiled = torch.compile(self.model, mode=compile_mode(self.device), dynamic=False)
            with torch.inference_mode():  # the probe must be an inference tensor, as batches are
                probe = torch.zeros(
                    self.batch_size, 3, self.size, self.size, device=self.device, dtype=self.dtype
                ).contiguous(memory_format=self.memory_format)
                compiled(probe)
        except Exception as exc:  # any backend failure: run eager, say why once
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
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
            if self.compiled:
                chunk = pad_batch(chunk, self.batch_size)
            batch = crops_to_tensor(chunk, self.device, self.dtype)
            batch = batch.contiguous(memory_format=self.memory_format)
            output = self._run(batch)[:count]
            if not bool(torch.isfinite(output).all()):  # else NaN pastes as a black square
                raise NonFiniteOutputError(
                    f"{self.source}: the generator returned NaN or infinite values (damaged "
                    "weights?); nothing was pasted. Check it with `gpen weights verify`"
                )
            restored += tensor_to_crops(output)
        return restored
