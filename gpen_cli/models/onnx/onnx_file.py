"""A torch module as ONNX bytes: traced, metadata attached, weights optionally in FP16.

The TorchScript-based exporter (`dynamo=False`) is used: on these graphs it gives opset 17
with standard operators only, a symbolic batch axis, and takes under a second for a small
generator where the torch.export-based one takes tens of seconds and needs onnxscript
(docs/design.md, "ONNX export").
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

OPSET = 17


def trace_to_onnx(
    module: torch.nn.Module, sample: torch.Tensor, input_name: str, output_name: str
) -> onnx.ModelProto:
    """`module` (one input, one output, batch first) traced on `sample`, batch axis free."""
    buffer = io.BytesIO()
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and folding notes
        torch.onnx.export(
            module,
            (sample,),
            buffer,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    _constants_to_initializers(model.graph)
    foreign = sorted({node.domain or "" for node in model.graph.node} - {"", "ai.onnx"})
    if foreign:  # e.g. an ATen fallback: the file would run in no other runtime
        raise ValueError(f"the exported graph uses non-standard operators ({foreign})")
    return model


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Tensors the exporter wrote as Constant nodes (the weights it derived from buffers)
    stored as initializers, where weights belong (and where `fp16_weights` finds them)."""
    kept = []
    for node in graph.node:
        value = [a for a in node.attribute if a.name == "value"]
        if node.op_type == "Constant" and len(value) == 1 and len(node.attribute) == 1:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def set_metadata(model: onnx.ModelProto, metadata: Mapping[str, object]) -> None:
    """Replace the file's metadata with `metadata` (every value written as text)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every FP32 initializer stored in FP16 and cast back on load.

    The inputs and outputs stay FP32 and the arithmetic FP32 (runtimes fold the casts at
    load time): the file is half the size, and the output differs from FP32 by the weights'
    rounding only. It runs on every provider, including CPU ones without FP16 kernels.
    """
    graph = model.graph
    casts = []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor).astype(np.float16)
        name = tensor.name
        tensor.CopyFrom(numpy_helper.from_array(values, name + "__fp16"))
        casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def to_bytes(model: onnx.ModelProto) -> bytes:
    """The serialised file, checked by ONNX's own checker first."""
    onnx.checker.check_model(model)
    return model.SerializeToString()
