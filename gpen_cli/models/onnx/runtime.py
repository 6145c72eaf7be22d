"""ONNX Runtime sessions, and a session that a torch pipeline stage can call like a module.

The provider follows the pipeline's device: on CUDA, TensorRT then CUDA when this
onnxruntime build has them (untested here: no GPU), else the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def providers_for(device: torch.device) -> list[str | tuple[str, dict]]:
    """The execution providers to ask for on `device`, best first, CPU always last."""
    import onnxruntime

    chosen: list[str | tuple[str, dict]] = []
    if device.type == "cuda":
        available = onnxruntime.get_available_providers()
        index = {"device_id": device.index or 0}
        chosen = [(name, index) for name in _GPU_PROVIDERS if name in available]
    return [*chosen, "CPUExecutionProvider"]


def session(model: bytes, device: torch.device | str = "cpu"):
    """An `onnxruntime.InferenceSession` of the serialised `model` on `device`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's notes on folded casts are not ours
    return onnxruntime.InferenceSession(
        model, sess_options=options, providers=providers_for(torch.device(device))
    )


def run(sess, batch: np.ndarray) -> np.ndarray:
    """The session's first output for `batch` fed to its one input."""
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class SessionModule:
    """An ONNX Runtime session called like the torch module it was exported from:
    N×C×H×W float tensor in, float tensor out, on the caller's device."""

    def __init__(self, model: bytes, device: torch.device, size: int | None = None):
        self.session = session(model, device)
        self.size = size

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = run(self.session, batch.detach().float().cpu().numpy())
        return torch.from_numpy(out).to(batch.device)
