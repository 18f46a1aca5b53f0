"""The tensors an ONNX model computes in ONNX Runtime, for the per-layer comparison
(deeplabv3_pipeline/evaluation/layers.py): from sessions on copies of the model whose float tensors of the
compared graph's names are graph outputs, a few GB of them each, so the model file a cell ran is never
changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.evaluation.layers import output_groups

# The outputs' bytes one session returns at most: ONNX Runtime keeps every declared output of a run alive to
# its end (R50-D8's int8 model at 1024x2048 with all of them: over 24 GB, killed; with a sixth of them asked
# of that session, still 10.8 GB), so each group of outputs is a session of its own.
GROUP_BYTES = 3 << 30


class OnnxTensors:
    """The float tensors an ONNX model computes on an image (the graph's input included), by their ONNX
    names. Made once per model, called once per image. In an int8 (QDQ) model a tensor is read as the
    layers after it read it, dequantized (:func:`quantized_views`)."""

    how = "ONNX Runtime (CPU) on copies of the model with the compared graph's float tensors as outputs"
    owned = True  # (session.run returns new arrays)
    streams = False

    def __init__(self, model_path: Path, wanted: Collection[str] | None = None) -> None:
        """``wanted``: the tensor names the comparison reads (the ONNX graph's; None: every one): only those
        become outputs, each read through its Q/DQ pair where it has one, not as well as it, in groups of
        at most GROUP_BYTES (one session each; one for a small model)."""
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
        graph = model.graph  # its nodes as the file's (only outputs are added)
        views = quantized_views(graph)
        declared = {output.name for output in graph.output}
        produced = {output for node in graph.node for output in node.output}  # (value_info may be stale)
        floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
        infos = {info.name: info for info in graph.value_info}
        self.read_as: dict[str, str] = {}  # an output of the session -> the tensor name it is handed on as
        extra = []
        for name, info in infos.items():
            if name not in produced or (wanted is not None and name not in wanted):
                continue
            source = views.get(name, name)
            source_info = infos.get(source, info)
            if source_info.type.tensor_type.elem_type not in floats:
                continue
            self.read_as[source] = name
            if source not in declared:
                extra.append(source_info)
                declared.add(source)
        self.model = model
        sizes = [info_bytes(info) for info in extra]
        self.groups = [[extra[index] for index in group] for group in output_groups(sizes, GROUP_BYTES)] or [[]]

    def session(self, outputs: list) -> object:
        """A session of the model with ``outputs`` added to its own."""
        import onnxruntime as ort

        copy = type(self.model)()
        copy.CopyFrom(self.model)
        copy.graph.output.extend(outputs)
        return ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])

    def dump(self, image: np.ndarray, sink: Callable[[str, np.ndarray], None]) -> None:
        """One session per group of outputs, one after another (ONNX Runtime returns a session's all at once)."""
        input_name = self.model.graph.input[0].name
        sink(input_name, image)
        for group in self.groups:
            session = self.session(group)
            names = [output.name for output in session.get_outputs()]
            values = session.run(names, {input_name: image})
            del session
            for index, name in enumerate(names):
                value, values[index] = values[index], None  # let go of each as it is handed on
                if name in self.read_as and value.dtype.kind == "f":
                    sink(self.read_as[name], value)


def info_bytes(info) -> int:
    """Bytes of a tensor of ``info``'s shape as float32 (0 where a dimension is not fixed)."""
    dims = [dim.dim_value if dim.HasField("dim_value") else 0 for dim in info.type.tensor_type.shape.dim]
    return 4 * int(np.prod(dims)) if dims and all(dims) else 0


def quantized_views(graph) -> dict[str, str]:
    """In a QDQ model: tensor -> the output of its QuantizeLinear -> DequantizeLinear pair, the tensor as
    the layers after it read it. A tensor is compared as that view, which carries int8's error (and is
    the one that means the same: where ONNX Runtime fuses Conv+Relu, the Conv's float output keeps the
    Relu's name but not its clamp, which the int8 range applies)."""
    quantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    return {
        quantized[node.input[0]]: node.output[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in quantized
    }
