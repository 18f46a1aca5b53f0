"""ONNX Runtime: the CPU default; CUDA and TensorRT through onnxruntime-gpu's execution providers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import static_image_shape

# Ops that make a model compute in int8. DequantizeLinear alone is not one of them: weight-only
# quantization dequantizes to float and computes float; activations are quantized by these.
QUANTIZING_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"})


def tensorrt_providers(model: Path, precision: str) -> list:
    """TensorRT first (engine cached next to the model), CUDA for what TensorRT cannot take."""
    cache = model.parent / f"trt_cache_{precision}"
    options = {
        "trt_fp16_enable": precision == "fp16",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_max_workspace_size": 8 << 30,
    }
    return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider"]


def quantized_ops(op_types: Iterable[str]) -> dict[str, int]:
    """How many of each int8-computing op (QuantizeLinear, QLinearConv, ...) a list of op types holds."""
    counts = Counter(op for op in op_types if op in QUANTIZING_OPS or op.startswith("QLinear"))
    return dict(sorted(counts.items()))


def onnx_op_types(model: Path) -> list[str]:
    """The op types of the model's main graph; external weights stay on disk (only the graph is wanted)."""
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception as error:  # protobuf's DecodeError and kin: a truncated or foreign file
        raise UserError(f"model {model} is not a readable ONNX file ({error}): export it again") from error
    return [node.op_type for node in graph.node]


def is_enabled(options: Mapping[str, object], key: str) -> bool:
    """An execution provider option as ONNX Runtime reports it back ("1"/"0" strings) or as given (bools)."""
    return str(options.get(key, "0")).strip().lower() in ("1", "true")


def onnxruntime_precision(quantized: Mapping[str, int], provider_options: Mapping[str, Mapping[str, object]]) -> str:
    """What a session computes: int8 where the model quantizes (QDQ) or TensorRT is told to, fp16 where
    TensorRT may use fp16, else fp32 (the CPU and CUDA providers compute a float model in fp32)."""
    tensorrt = provider_options.get("TensorrtExecutionProvider", {})
    if quantized or is_enabled(tensorrt, "trt_int8_enable"):
        return "int8"
    return "fp16" if is_enabled(tensorrt, "trt_fp16_enable") else "fp32"


def onnxruntime_evidence(
    version: str, providers: Iterable[str], quantized: Mapping[str, int], provider_options: Mapping[str, Mapping]
) -> str:
    """One line: the runtime, its providers, the options and model ops that decided the precision."""
    parts = [f"ONNX Runtime {version} {', '.join(providers)}"]
    tensorrt = provider_options.get("TensorrtExecutionProvider")
    if tensorrt is not None:
        flags = ", ".join(f"{key}={int(is_enabled(tensorrt, key))}" for key in ("trt_fp16_enable", "trt_int8_enable"))
        parts.append(f"TensorRT {flags}")
    cuda = provider_options.get("CUDAExecutionProvider")
    if cuda is not None and is_enabled(cuda, "use_tf32"):
        # TF32 keeps fp32 storage but rounds matmul/conv inputs on Ampere and later GPUs: worth saying.
        parts.append("CUDA use_tf32=1 (fp32 matmuls/convs may round inputs to TF32 on Ampere+)")
    if quantized:
        parts.append("the model holds int8 ops: " + ", ".join(f"{count} {op}" for op, count in quantized.items()))
    else:
        parts.append("no quantized ops in the model")
    return "; ".join(parts)


class OnnxRuntimeBackend:
    def __init__(self, model: Path, threads: int, providers: list, name: str = "onnxruntime") -> None:
        import onnxruntime as ort

        wanted = [p if isinstance(p, str) else p[0] for p in providers]
        missing = [p for p in wanted if p not in ort.get_available_providers()]
        if missing:
            raise UserError(
                f"onnxruntime {ort.__version__} here lacks {', '.join(missing)} (it has "
                f"{', '.join(ort.get_available_providers())}): for NVIDIA GPUs install envs/requirements-gpu.txt "
                "(onnxruntime-gpu, and tensorrt for TensorrtExecutionProvider)"
            )
        # Read before the session loads: the parsed graph is freed first, so peak memory is not the sum of both.
        quantized = quantized_ops(onnx_op_types(model))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=providers)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = static_image_shape(model_input.shape, model)
        self.name = name
        # The session's own account of its providers and their options, not what was asked for.
        provider_options = self.session.get_provider_options()
        self.inference_precision = onnxruntime_precision(quantized, provider_options)
        self.precision_evidence = onnxruntime_evidence(
            ort.__version__, self.session.get_providers(), quantized, provider_options
        )

    def run(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: image})[0].astype(np.int64, copy=False)
