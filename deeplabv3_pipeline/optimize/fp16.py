"""The simplified fp32 ONNX model with fp16 weights and activations, for strongly typed TensorRT.

TensorRT 11 builds strongly typed networks only (its FP16 builder flag is gone): an engine computes in
the types its ONNX model declares, so an fp16 engine needs an fp16 model. onnxconverter-common's
``convert_float_to_float16`` makes it: initializers and float tensors become float16, the input and
output keep their types (``keep_io_types``: the prep ``.bin`` files stay float32, the class ids int64),
and the ops of its block list (Resize among them) stay float32 behind Casts, so the final bilinear
resize of the logits before the ArgMax is computed in fp32. On TensorRT 10 the same model is built with
the FP16 flag.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import file_sha256, read_onnx, write_atomic
from deeplabv3_pipeline.optimize.mixed import Figures, MixedSearch, SearchResult, search_float_layers

LOG = logging.getLogger(__name__)


def tensor_type_counts(model: Any) -> dict[str, int]:
    """How many initializers of each element type (FLOAT, FLOAT16, ...) the model holds."""
    import onnx

    counts = Counter(onnx.TensorProto.DataType.Name(tensor.data_type) for tensor in model.graph.initializer)
    return dict(sorted(counts.items()))


def read_fp32_model(source: Path) -> Any:
    """The fp32 ONNX model to convert; a clear error for a missing file or a Q/DQ model."""
    if not source.is_file():
        raise UserError(f"ONNX model {source} does not exist: run the workflow's simplify_onnx rule first")
    model = read_onnx(source)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        raise UserError(f"{source} is an int8 Q/DQ model: convert the fp32 model (deeplabv3_sim_bs1.onnx) instead")
    return model


def fp16_model(model: Any, keep_fp32: Sequence[str] = ()) -> Any:
    """``model`` in float16 but its input and output types and the nodes named in ``keep_fp32`` (each
    behind Casts, computing in fp32: onnxconverter-common's ``node_block_list``)."""
    from onnxconverter_common.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, node_block_list=list(keep_fp32) or None)


def fp16_layers(model: Any) -> list[str]:
    """The nodes the conversion computes in float16, in the graph's order: those that read and write float
    tensors (after shape inference), but the ops onnxconverter-common keeps fp32 anyway (Resize, TopK, ...).
    Every one of them kept fp32 is the fp32 model again: the candidates of the mixed search."""
    return _fp16_nodes(model, _float_tensors(model))


def _fp16_nodes(model: Any, floats: set[str]) -> list[str]:
    """:func:`fp16_layers` given the model's float tensors (:func:`_float_tensors`: a shape inference)."""
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST

    return [
        node.name
        for node in model.graph.node
        if node.op_type not in (*DEFAULT_OP_BLOCK_LIST, "Constant", "Cast")
        and any(name in floats for name in node.input)
        and any(name in floats for name in node.output)
    ]


def fp16_emulation(model: Any, keep_fp32: Sequence[str] = ()) -> Any:
    """An fp32 model that computes as ``fp16_model(model, keep_fp32)`` does on fp16 hardware (TensorRT, Ascend's
    cube units: float16 operands, float32 accumulation): each fp16 node reads its weights rounded to
    float16 and its other float inputs through a Cast to float16 and back, and writes its outputs the same
    way (a value past 65504 becomes infinite, as in float16). ONNX Runtime on the CPU cannot judge the fp16
    model itself: where it lacks a float16 kernel it computes in float32 and drops the casts between such
    nodes, so their activations are never rounded. Tensor names are kept (the per-layer comparison reads them)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    emulated = onnx.ModelProto()
    emulated.CopyFrom(model)
    graph = emulated.graph
    float_types = _float_tensors(model)  # (one shape inference serves both)
    fp16 = set(_fp16_nodes(model, float_types)) - set(keep_fp32)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    rounded: dict[str, str] = {}  # tensor -> its float16-rounded copy
    nodes: list[Any] = []

    def round_trip(source: str, target: str) -> list[Any]:
        half = f"{target}_as_float16"
        return [
            helper.make_node("Cast", [source], [half], name=f"{half}_cast", to=onnx.TensorProto.FLOAT16),
            helper.make_node("Cast", [half], [target], name=f"{target}_cast", to=onnx.TensorProto.FLOAT),
        ]

    for node in graph.node:
        if node.name not in fp16:
            nodes.append(node)
            continue
        for index, name in enumerate(node.input):
            if name not in float_types:
                continue
            if name not in rounded:
                rounded[name] = f"{name}_fp16"
                if name in initializers:
                    values = numpy_helper.to_array(initializers[name]).astype(np.float16).astype(np.float32)
                    graph.initializer.append(numpy_helper.from_array(values, rounded[name]))
                else:
                    nodes.extend(round_trip(name, rounded[name]))
            node.input[index] = rounded[name]
        nodes.append(node)
        for index, name in enumerate(node.output):
            if name in float_types:
                node.output[index] = f"{name}_fp32_sum"
                nodes.extend(round_trip(node.output[index], name))
                rounded[name] = name  # (already float16 values)
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in read]  # (the rounded copies replace some)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return emulated


def _float_tensors(model: Any) -> set[str]:
    """The float32 tensors of ``model`` (initializers, inputs, outputs and inferred values)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    infos = (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    names = {info.name for info in infos if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return names | {tensor.name for tensor in inferred.graph.initializer if tensor.data_type == onnx.TensorProto.FLOAT}


def convert_to_fp16(source: Path, output: Path, keep_fp32: Sequence[str] = ()) -> dict[str, Any]:
    """Write the fp16 model of ``source`` to ``output`` atomically (the nodes of ``keep_fp32`` computing in
    fp32); return what the conversion did."""
    import onnxconverter_common
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST

    model = read_fp32_model(source)
    before = tensor_type_counts(model)
    converted = fp16_model(model, keep_fp32)
    after = tensor_type_counts(converted)
    if not after.get("FLOAT16"):
        raise UserError(f"converting {source} to fp16 left no float16 initializer: is it a float model?")
    blocked = sorted({node.op_type for node in converted.graph.node if node.op_type in DEFAULT_OP_BLOCK_LIST})
    write_atomic(output, converted.SerializeToString())
    LOG.info("%s -> %s: initializers %s -> %s; kept fp32: %s", source, output, before, after, ", ".join(blocked))
    return {
        "source_model": str(source),
        "source_sha256": file_sha256(source),
        "output_model": str(output),
        "tool": f"onnxconverter-common {onnxconverter_common.__version__} convert_float_to_float16",
        "keep_io_types": True,
        "initializers_before": before,
        "initializers_after": after,
        "kept_fp32_ops": blocked,
        "kept_fp32_nodes": list(keep_fp32),
        "casts": sum(node.op_type == "Cast" for node in converted.graph.node),
    }


def convert_mixed(source: Path, output: Path, search: MixedSearch) -> tuple[dict[str, Any], SearchResult]:
    """The fp16 model of ``source`` with the fewest nodes kept fp32 that meets ``search``'s target on its
    check frames, each candidate judged as fp16 hardware computes it (:func:`fp16_emulation`, run in ONNX
    Runtime), ranked by the per-layer comparison of that emulation with ``source`` on the first check frame;
    returns (the conversion's record, the search)."""
    import onnx

    from deeplabv3_pipeline.backends.onnxruntime.mixed import rank_by_comparison

    model = read_fp32_model(source)
    candidates = fp16_layers(model)
    with tempfile.TemporaryDirectory(prefix=".fp16-mixed-", dir=output.parent) as scratch:
        candidate = Path(scratch) / "candidate.onnx"
        onnx.save(fp16_emulation(model), str(candidate))
        ranked = rank_by_comparison(source, candidate, search.check.images[0], candidates)
        LOG.info("%d fp16 nodes ranked by the error each adds; the first: %s", len(ranked), ", ".join(ranked[:5]))

        def evaluate(layers: tuple[str, ...]) -> Figures:
            onnx.save(fp16_emulation(model, layers), str(candidate))
            figures = search.check.judge(candidate)
            LOG.info("%d nodes kept fp32: pixel agreement %.4f", len(layers), figures.pixel_agreement)
            return figures

        result = search_float_layers(ranked, evaluate, search.target, search.bounds, where="fp16")
    record = convert_to_fp16(source, output, result.float_layers)
    return record, result
