"""ONNX Runtime's mixed int8: the Q/DQ model with the fewest layers kept in float that meets the target
(deeplabv3_pipeline/optimize/mixed.py: the target, the ranking, the search), for the QDQ model ONNX
Runtime runs and the symmetric one TensorRT builds.

The model is prepared and calibrated once; each candidate is ``quantize_static`` again from the same
ranges with its layers in ``nodes_to_exclude`` (:func:`~.quantize.quantize_prepared`), then judged on
the check frames in ONNX Runtime. A layer in float reads float tensors: ``nodes_to_exclude`` alone leaves
a layer reading its inputs through the Q/DQ pair the layer before it wrote (an outlier channel's range
then still crushes the others), so :func:`read_float_inputs` hands it the tensor before that pair.

The layers are ranked by the error each adds in the per-layer comparison of the plain int8 model with
the fp32 model on the first check frame (deeplabv3_pipeline/evaluation/layers.py), one pass of each.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.optimize.mixed import (
    MixedSearch,
    SearchResult,
    layer_sensitivity,
    rank_layers,
    search_float_layers,
)
from deeplabv3_pipeline.optimize.quantize import QuantizeSettings

from .quantize import prepare, quantize_prepared

LOG = logging.getLogger(__name__)
# what ONNX Runtime's QDQ quantizer drops where the next QuantizeLinear's range clamps as it would
REMOVABLE_ACTIVATIONS = ("Relu", "Clip")


def read_float_inputs(model: Any, layers: Sequence[str], source: Any) -> int:
    """Make each of ``layers`` (node names) of the QDQ ``model`` read its activations as the fp32 graph
    ``source`` computes them, before their QuantizeLinear -> DequantizeLinear pair, and drop the pairs
    nothing reads any more; returns how many inputs changed. Where ONNX Runtime's quantizer removed the
    activation that made such a tensor (a Relu before a uint8 QuantizeLinear: its zero point clamps as the
    Relu would), the float tensor before the pair is the unclamped one: a copy of that activation is put
    back for the layer. Weights (a pair on an initializer) are left: an excluded layer's own are float."""
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    quantize = {node.output[0]: node for node in graph.node if node.op_type == "QuantizeLinear"}
    float_of = {  # DequantizeLinear output -> the float tensor its QuantizeLinear read
        node.output[0]: quantize[node.input[0]].input[0]
        for node in graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[0] in quantize
        and quantize[node.input[0]].input[0] not in initializers
    }
    source_producer = {output: node for node in source.node for output in node.output}
    present = {node.name for node in graph.node}
    wanted, changed, restored = set(layers), 0, {}
    for node in list(graph.node):  # (a copy: activations are inserted)
        if node.name not in wanted:
            continue
        for index, name in enumerate(node.input):
            if name not in float_of:
                continue
            tensor = float_of[name]
            activation = source_producer.get(tensor)
            removed = activation is not None and activation.op_type in REMOVABLE_ACTIVATIONS
            if removed and activation.name not in present:
                if tensor not in restored:  # the removed activation, again, on the float tensor
                    copy = onnx_node_copy(activation, tensor, f"{tensor}_float")
                    graph.node.insert(list(graph.node).index(node), copy)
                    restored[tensor] = copy.output[0]
                node.input[index] = restored[tensor]
            else:
                node.input[index] = tensor
            changed += 1
    _drop_unread_pairs(graph)
    return changed


def onnx_node_copy(node: Any, input_name: str, output_name: str) -> Any:
    """``node`` (an activation: its data input first, a Clip's bounds after it, one output) reading
    ``input_name`` and writing ``output_name``."""
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = f"{node.name}_float"
    copy.input[0] = input_name
    del copy.output[:]
    copy.output.append(output_name)
    return copy


def _drop_unread_pairs(graph: Any) -> None:
    """Remove QuantizeLinear/DequantizeLinear nodes whose outputs nothing reads (nor the graph returns)."""
    while True:
        read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        unread = [
            node
            for node in graph.node
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(out in read for out in node.output)
        ]
        if not unread:
            return
        for node in unread:
            graph.node.remove(node)


def quantized_nodes(graph: Any, kept_float: Sequence[str]) -> list[str]:
    """The nodes of a QDQ graph that int8 touches (they read a DequantizeLinear's output), in its order, but
    ``kept_float`` (the tail): the candidates of the search. Every one of them in float is the fp32 model."""
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    skip = {*kept_float, ""}
    return [
        node.name
        for node in graph.node
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and node.name not in skip
        and any(name in dequantized for name in node.input)
    ]


def rank_by_comparison(fp32: Path, lowered: Path, image: Any, candidates: Sequence[str]) -> list[str]:
    """``candidates`` (nodes of ``fp32``) ordered by the error each adds between ``fp32`` and ``lowered`` (its
    plain int8 model, or the fp16 emulation) on one image, both run in ONNX Runtime (the per-layer comparison:
    deeplabv3_pipeline/evaluation/layers.py)."""
    from deeplabv3_pipeline.evaluation.layers import compare_dumps, read_graph, tensor_names

    from .tensors import OnnxTensors

    names = tensor_names(fp32)
    comparison = compare_dumps(OnnxTensors(fp32, names), OnnxTensors(lowered, names), fp32, [image], lowered.parent)
    return rank_layers(layer_sensitivity(read_graph(fp32), comparison.rows, candidates), candidates)


def quantize_mixed(
    source: Path,
    output: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
    search: MixedSearch,
) -> tuple[list[str], int, list[str], SearchResult]:
    """The mixed Q/DQ model of ``source`` at ``output`` for ``search``'s target; returns (float nodes,
    QuantizeLinear count, notes, the search)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix=".mixed-", dir=output.parent) as scratch:
        folder = Path(scratch)
        prepared = prepare(source, files, input_name, shape, settings, folder)
        plain = folder / "plain.onnx"
        quantize_prepared(prepared, plain, settings)
        candidates = quantized_nodes(onnx.load(str(plain), load_external_data=False).graph, prepared.float_nodes)
        ranked = rank_by_comparison(prepared.model, plain, search.check.images[0], candidates)
        LOG.info("%d quantized nodes ranked by the error each adds; the first: %s", len(ranked), ", ".join(ranked[:5]))

        def evaluate(layers: tuple[str, ...]) -> Any:
            candidate = plain
            if layers:
                candidate = folder / "candidate.onnx"
                quantize_prepared(prepared, candidate, settings, layers)
            figures = search.check.judge(candidate, "int8")
            LOG.info("%d layers in float: pixel agreement %.4f", len(layers), figures.pixel_agreement)
            return figures

        result = search_float_layers(ranked, evaluate, search.target, search.bounds)
        staged = folder / "mixed.onnx"
        count = quantize_prepared(prepared, staged, settings, result.float_layers)
        staged.replace(output)
    notes = [*prepared.notes, f"layers ranked by the per-layer comparison on {Path(search.check.files[0]).name}"]
    return [*prepared.float_nodes, *result.float_layers], count, notes, result
