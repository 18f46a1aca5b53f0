"""ONNX Runtime: the CPU default; CUDA and TensorRT through onnxruntime-gpu's execution providers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from . import static_image_shape


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
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=providers)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = static_image_shape(model_input.shape, model)
        self.name = name

    def run(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: image})[0].astype(np.int64, copy=False)
