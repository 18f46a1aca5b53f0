"""Arithmetic operations per image of an ONNX model with static shapes, read from its graph.

The benchmark divides this count by a variant's time to get a rate (GOP/s) it can put next to the
machine's peak. Convolutions dominate (over 99% for DeepLabV3); the other ops are counted with the
documented per-element estimates below so that nothing with arithmetic is silently zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.errors import UserError

# Operations per output element of the ops that are not GEMM-like (documented estimates).
ELEMENTWISE_OPS = {"Relu": 1, "Add": 1, "Mul": 1, "Sub": 1, "Div": 1, "Clip": 1, "Sigmoid": 4}
RESIZE_OPS_PER_OUTPUT = {"linear": 8, "nearest": 0, "cubic": 32}
# The rules above in one sentence, for reports that show the count.
COUNTING_RULES = (
    "ONNX graph with inferred shapes: Conv 2 x MACs + 1 per output for the bias; MatMul 2 x M x K x N; "
    "Relu/Add/Sub/Mul/Div/Clip 1 and Sigmoid 4 per output element; MaxPool/AveragePool kernel size per output; "
    "GlobalAveragePool/ArgMax/ReduceMean 1 per input element; Resize 8 (linear), 32 (cubic), 0 (nearest) per "
    "output element; Concat, Reshape and other data movement 0"
)


def conv_ops(node: Any, shapes: dict[str, list[int]]) -> int:
    """2 x MACs (+ 1 per output element for a bias) of a Conv with known input/weight/output shapes."""
    out = shapes[node.output[0]]
    weight = shapes[node.input[1]]  # (Cout, Cin/group, kH, kW)
    macs = int(np.prod(out)) * int(np.prod(weight[1:]))
    bias = int(np.prod(out)) if len(node.input) > 2 and node.input[2] else 0
    return 2 * macs + bias


def node_ops(node: Any, shapes: dict[str, list[int]]) -> int:
    """Operations of one node: Conv/MatMul as 2 x MACs; pooling, resize, argmax and elementwise per element."""
    op = node.op_type
    attributes = {attribute.name: attribute for attribute in node.attribute}
    if op == "Conv":
        return conv_ops(node, shapes)
    if op == "MatMul":  # (..., M, K) @ (K, N): 2 x M x K x N per batch entry
        return 2 * int(np.prod(shapes[node.output[0]])) * shapes[node.input[0]][-1]
    out = int(np.prod(shapes.get(node.output[0], [0])))
    if op in ELEMENTWISE_OPS:
        return ELEMENTWISE_OPS[op] * out
    if op in ("MaxPool", "AveragePool"):
        return out * int(np.prod(attributes["kernel_shape"].ints))
    if op in ("GlobalAveragePool", "ArgMax", "ReduceMean"):
        return int(np.prod(shapes[node.input[0]]))
    if op == "Resize":
        mode = attributes["mode"].s.decode() if "mode" in attributes else "nearest"
        return RESIZE_OPS_PER_OUTPUT.get(mode, 8) * out
    return 0  # Concat, Reshape, Constant, QuantizeLinear...: data movement or format, no arithmetic counted


def tensor_shapes(model: Any) -> dict[str, list[int]]:
    """Every named tensor's shape after shape inference (0 for an unknown dimension), weights included."""
    shapes: dict[str, list[int]] = {}
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        shapes[info.name] = [dim.dim_value for dim in info.type.tensor_type.shape.dim]
    for initializer in model.graph.initializer:
        shapes[initializer.name] = list(initializer.dims)
    return shapes


def count_operations(model_path: Path) -> dict[str, Any]:
    """Operations per image of an ONNX model with static shapes: ``total`` and ``by_op`` (op type -> count,
    zero-count types left out). Rules: :data:`COUNTING_RULES`."""
    import onnx

    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    except Exception as error:  # protobuf's DecodeError, a missing file, a graph shape inference rejects
        raise UserError(f"cannot count the operations of {model_path} ({error}): is it the exported ONNX?") from error
    shapes = tensor_shapes(model)
    for graph_input in model.graph.input:
        # A dynamic dimension reads as 0 and would make every count 0: say so instead of reporting nothing.
        if graph_input.name in shapes and not all(shapes[graph_input.name]):
            raise UserError(
                f"{model_path} input {graph_input.name} has shape {shapes[graph_input.name]} (0: not fixed): "
                "count the simplified model exported at a fixed shape"
            )
    by_op: dict[str, int] = {}
    for node in model.graph.node:
        by_op[node.op_type] = by_op.get(node.op_type, 0) + node_ops(node, shapes)
    return {"total": sum(by_op.values()), "by_op": {op: ops for op, ops in sorted(by_op.items()) if ops}}
