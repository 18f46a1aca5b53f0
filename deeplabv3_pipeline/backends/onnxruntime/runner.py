"""ONNX Runtime: the CPU default, and NVIDIA GPUs through onnxruntime-gpu's CUDA execution provider
(``onnxruntime.providers: [CUDAExecutionProvider, CPUExecutionProvider]``).

fp32 runs the simplified ONNX model; int8 the static QDQ model of rule quantize_onnx.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.io.binio import read_onnx

from ...errors import UserError
from ..base import FileRunner, static_image_shape

PRECISIONS = ("fp32", "int8")

# Ops that make a model compute in int8. DequantizeLinear alone is not one of them: weight-only
# quantization dequantizes to float and computes float; activations are quantized by these.
QUANTIZING_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"})


def pinned_providers(providers: list[str]) -> list:
    """The providers with CUDA's TF32 switched off: on by default since ONNX Runtime 1.17 (Ampere and later
    round fp32 matmul/conv inputs to TF32), it would make an "fp32" run another precision."""
    return [(name, {"use_tf32": "0"}) if name == "CUDAExecutionProvider" else name for name in providers]


def quantized_ops(op_types: Iterable[str]) -> dict[str, int]:
    """How many of each int8-computing op (QuantizeLinear, QLinearConv, ...) a list of op types holds."""
    counts = Counter(op for op in op_types if op in QUANTIZING_OPS or op.startswith("QLinear"))
    return dict(sorted(counts.items()))


def onnx_op_types(model: Path) -> list[str]:
    """The op types of the model's main graph; external weights stay on disk (only the graph is wanted)."""
    graph = read_onnx(model, external_data=False).graph
    return [node.op_type for node in graph.node]


def is_enabled(options: Mapping[str, object], key: str) -> bool:
    """An execution provider option as ONNX Runtime reports it back ("1"/"0" strings) or as given (bools)."""
    return str(options.get(key, "0")).strip().lower() in ("1", "true")


def onnxruntime_precision(quantized: Mapping[str, int]) -> str:
    """What a session computes: int8 where the model quantizes (QDQ), else fp32 (the CPU and CUDA
    providers compute a float model in fp32; CUDA's TF32 rounding is named in the evidence)."""
    return "int8" if quantized else "fp32"


def onnxruntime_evidence(
    version: str, providers: Iterable[str], quantized: Mapping[str, int], provider_options: Mapping[str, Mapping]
) -> str:
    """One line: the runtime, its providers, the options and model ops that decided the precision."""
    parts = [f"ONNX Runtime {version} {', '.join(providers)}"]
    cuda = provider_options.get("CUDAExecutionProvider")
    if cuda is not None and is_enabled(cuda, "use_tf32"):
        # TF32 keeps fp32 storage but rounds matmul/conv inputs on Ampere and later GPUs: worth saying.
        parts.append("CUDA use_tf32=1 (fp32 matmuls/convs may round inputs to TF32 on Ampere+)")
    if quantized:
        parts.append("the model holds int8 ops: " + ", ".join(f"{count} {op}" for op, count in quantized.items()))
    else:
        parts.append("no quantized ops in the model")
    return "; ".join(parts)


class OnnxRuntimeBackend(FileRunner):
    name = "onnxruntime"

    def __init__(self, model: Path, threads: int, providers: list[str]) -> None:
        import onnxruntime as ort

        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise UserError(
                f"onnxruntime {ort.__version__} here lacks {', '.join(missing)} (it has "
                f"{', '.join(ort.get_available_providers())}): for NVIDIA GPUs install envs/requirements-gpu.txt "
                "(onnxruntime-gpu)"
            )
        # Read before the session loads: the parsed graph is freed first, so peak memory is not the sum of both.
        quantized = quantized_ops(onnx_op_types(model))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=pinned_providers(providers))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = static_image_shape(model_input.shape, model)
        # The session's own account of its providers and their options, not what was asked for.
        provider_options = self.session.get_provider_options()
        self.inference_precision = onnxruntime_precision(quantized)
        self.precision_evidence = onnxruntime_evidence(
            ort.__version__, self.session.get_providers(), quantized, provider_options
        )

    def run(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: image})[0].astype(np.int64, copy=False)
