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
from collections import Counter
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import file_sha256, read_onnx, write_atomic

LOG = logging.getLogger(__name__)


def tensor_type_counts(model: Any) -> dict[str, int]:
    """How many initializers of each element type (FLOAT, FLOAT16, ...) the model holds."""
    import onnx

    counts = Counter(onnx.TensorProto.DataType.Name(tensor.data_type) for tensor in model.graph.initializer)
    return dict(sorted(counts.items()))


def convert_to_fp16(source: Path, output: Path) -> dict[str, Any]:
    """Write the fp16 model of ``source`` to ``output`` atomically; return what the conversion did."""
    import onnxconverter_common
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    if not source.is_file():
        raise UserError(f"ONNX model {source} does not exist: run the workflow's simplify_onnx rule first")
    model = read_onnx(source)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        raise UserError(f"{source} is an int8 Q/DQ model: convert the fp32 model (deeplabv3_sim_bs1.onnx) instead")
    before = tensor_type_counts(model)
    converted = convert_float_to_float16(model, keep_io_types=True)
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
        "casts": sum(node.op_type == "Cast" for node in converted.graph.node),
    }
