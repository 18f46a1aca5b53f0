"""Where two runs of one network part: a per-layer comparison of every tensor both compute.

The metrics and thresholds are those of Ascend's msit/ait ``debug compare`` (one row per tensor: cosine
similarity, max and mean absolute error, relative Euclidean distance, KL divergence, RMSE; a tensor is
past the thresholds when its cosine similarity is below 0.99, its relative Euclidean distance above
0.05, its KL divergence above 0.005 or its RMSE above 1.0). Rows follow the reference graph's order;
the first row past a threshold is where the outputs part, and :func:`error_origin` says whether the
error starts there (the tensors it reads still agree) or accumulates (they already drift).

Tensors are dumped from a copy of each ONNX model whose every float tensor is a graph output
(:class:`OnnxTensors`), so the models a cell ran are never changed; in an int8 (QDQ) model a tensor is
read as the layers after it read it, dequantized (:func:`quantized_views`). Pure functions but the dump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.errors import UserError

# metric -> (direction, ait's default threshold): "below" fails under it, "above" over it
THRESHOLDS: dict[str, tuple[str, float]] = {
    "cosine_similarity": ("below", 0.99),
    "relative_euclidean": ("above", 0.05),
    "kl_divergence": ("above", 0.005),
    "rmse": ("above", 1.0),
}
# a tensor that reads inputs this close to the reference's took no error from them (error_origin)
CLEAN_INPUT_COSINE = 0.9999
METRICS = ("cosine_similarity", "max_abs_error", "mean_abs_error", "relative_euclidean", "kl_divergence", "rmse")


def tensor_metrics(reference: np.ndarray, other: np.ndarray, class_axis: int | None = None) -> dict[str, float | None]:
    """ait's metrics of ``other`` against ``reference`` (same shape). ``class_axis``: where the tensor is
    logits, the axis of the classes: KL divergence of the softmaxed distributions, averaged over pixels
    (None elsewhere, as ait computes it only where it applies)."""
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {other.shape}")
    ref, oth = reference.astype(np.float64).ravel(), other.astype(np.float64).ravel()
    difference = oth - ref
    ref_norm, oth_norm, diff_norm = (float(np.linalg.norm(v)) for v in (ref, oth, difference))
    if ref_norm == 0 and oth_norm == 0:
        cosine = 1.0
    elif ref_norm == 0 or oth_norm == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(ref, oth) / (ref_norm * oth_norm))
    relative = diff_norm / ref_norm if ref_norm else (0.0 if diff_norm == 0 else math.inf)
    return {
        "cosine_similarity": cosine,
        "max_abs_error": float(np.abs(difference).max()) if difference.size else 0.0,
        "mean_abs_error": float(np.abs(difference).mean()) if difference.size else 0.0,
        "relative_euclidean": relative,
        "kl_divergence": None if class_axis is None else softmax_kl(reference, other, class_axis),
        "rmse": float(np.sqrt(np.mean(difference**2))) if difference.size else 0.0,
    }


def softmax_kl(reference: np.ndarray, other: np.ndarray, axis: int) -> float:
    """Mean over pixels of KL(softmax(reference) || softmax(other)) along ``axis``."""

    def log_softmax(values: np.ndarray) -> np.ndarray:
        shifted = values.astype(np.float64) - values.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    log_p, log_q = log_softmax(reference), log_softmax(other)
    return float((np.exp(log_p) * (log_p - log_q)).sum(axis=axis).mean())


def past_thresholds(metrics: Mapping[str, float | None], thresholds: Mapping[str, tuple[str, float]]) -> list[str]:
    """The metrics of a row past their thresholds (``cosine_similarity 0.9512 < 0.99``)."""
    past = []
    for name, (direction, limit) in thresholds.items():
        value = metrics.get(name)
        if value is None:
            continue
        if not math.isfinite(value) and not (direction == "below" and value == math.inf):
            past.append(f"{name} {value}")  # NaN, or an infinity on the failing side: an overflow (fp16)
        elif (direction == "below" and value < limit) or (direction == "above" and value > limit):
            past.append(f"{name} {value:.4g} {'<' if direction == 'below' else '>'} {limit:g}")
    return past


@dataclass(frozen=True)
class Tensor:
    """A tensor of the reference graph, in its order: its name, the node that makes it, what it reads."""

    name: str
    op_type: str
    inputs: tuple[str, ...]


def compare_tensors(
    order: Sequence[Tensor],
    reference: Mapping[str, np.ndarray],
    other: Mapping[str, np.ndarray],
    logits: str | None = None,
    thresholds: Mapping[str, tuple[str, float]] = THRESHOLDS,
) -> list[dict]:
    """One row per tensor of ``order`` that both dumps hold with one shape: its metrics and which
    thresholds it is past. ``logits``: the tensor whose KL divergence is computed (class axis 1)."""
    rows = []
    for tensor in order:
        if tensor.name not in reference or tensor.name not in other:
            continue
        ours, theirs = reference[tensor.name], other[tensor.name]
        row = {
            "index": len(rows),
            "tensor": tensor.name,
            "op_type": tensor.op_type,
            "reference_shape": list(ours.shape),
            "reference_dtype": str(ours.dtype),
            "other_shape": list(theirs.shape),
            "other_dtype": str(theirs.dtype),
        }
        if ours.shape != theirs.shape:
            rows.append(row | dict.fromkeys(METRICS) | {"past": ["shapes differ"]})
            continue
        metrics = tensor_metrics(ours, theirs, class_axis=1 if tensor.name == logits else None)
        past = past_thresholds(metrics, thresholds)
        # (JSON has no NaN or infinity: such a metric is null, and "past" names its value)
        finite = {
            name: None if value is not None and not math.isfinite(value) else value for name, value in metrics.items()
        }
        rows.append(row | finite | {"past": past})
    if not rows:
        raise UserError(
            "the two models share no tensor name: compare models exported from one network "
            "(an ONNX model and its int8, fp16 or Winograd copy)"
        )
    return rows


def worst_rows(per_image: Sequence[Sequence[Mapping]]) -> list[dict]:
    """The rows of several images as one: per tensor the worst of each metric (the lowest cosine
    similarity, the highest of the others) and every threshold any image is past."""
    if not per_image:
        raise ValueError("no image compared")
    worst = [dict(row) for row in per_image[0]]
    for rows in per_image[1:]:
        for combined, row in zip(worst, rows, strict=True):
            for name in METRICS:
                values = [value for value in (combined[name], row[name]) if value is not None]
                if values:
                    combined[name] = min(values) if name == "cosine_similarity" else max(values)
            combined["past"] = list(dict.fromkeys([*combined["past"], *row["past"]]))
    return worst


def first_past(rows: Sequence[Mapping]) -> Mapping | None:
    return next((row for row in rows if row["past"]), None)


def error_origin(rows: Sequence[Mapping], order: Sequence[Tensor]) -> str | None:
    """For the first row past a threshold: ``starts here`` where every compared tensor it reads still
    agrees with the reference (cosine similarity >= CLEAN_INPUT_COSINE, or it reads only the graph's
    input), ``accumulates`` where one already drifted without crossing a threshold. None: no row past."""
    first = first_past(rows)
    if first is None:
        return None
    by_name = {row["tensor"]: row for row in rows}
    reads = next(tensor.inputs for tensor in order if tensor.name == first["tensor"])
    cosines = [
        by_name[name]["cosine_similarity"]
        for name in reads
        if by_name.get(name, {}).get("cosine_similarity") is not None
    ]
    return "starts here" if all(value >= CLEAN_INPUT_COSINE for value in cosines) else "accumulates"


# ------------------------------------------------------------------------------------------------ the dump


def graph_order(graph) -> list[Tensor]:
    """Every node output of an ONNX graph, in the graph's (topological) order."""
    return [
        Tensor(output, node.op_type, tuple(name for name in node.input if name))
        for node in graph.node
        for output in node.output
        if output
    ]


def logits_tensor(graph) -> str | None:
    """The tensor the graph's last ArgMax reads over axis 1: its class scores (None where it has none)."""
    argmaxes = [
        node
        for node in graph.node
        if node.op_type == "ArgMax" and {a.name: a.i for a in node.attribute}.get("axis", 0) == 1
    ]
    return argmaxes[-1].input[0] if argmaxes else None


class OnnxTensors:
    """Every float tensor an ONNX model computes on an image (the graph's input included), from a session
    on a copy of the model whose float tensors are all graph outputs (the model file is not changed).
    Made once per model, called once per image."""

    def __init__(self, model_path: Path) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
        self.graph = model.graph  # its nodes as the file's (only outputs are added)
        declared = {output.name for output in self.graph.output}
        produced = {output for node in self.graph.node for output in node.output}  # (value_info may be stale)
        floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
        for info in self.graph.value_info:
            if info.name in produced and info.name not in declared and info.type.tensor_type.elem_type in floats:
                self.graph.output.append(info)
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self.quantized_views = quantized_views(self.graph)

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        names = [output.name for output in self.session.get_outputs()]
        input_name = self.session.get_inputs()[0].name
        values = self.session.run(names, {input_name: image})
        tensors = {input_name: image}
        tensors.update({name: value for name, value in zip(names, values, strict=True) if value.dtype.kind == "f"})
        for name, dequantized in self.quantized_views.items():
            if dequantized in tensors:
                tensors[name] = tensors[dequantized]
        return tensors


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
