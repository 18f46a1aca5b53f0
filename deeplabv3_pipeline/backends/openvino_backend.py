"""OpenVINO runtime on the CPU, reading the simplified ONNX model directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import static_image_shape


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        network = core.read_model(str(model))
        shape = network.input(0).get_partial_shape()
        self.input_shape = static_image_shape([dim.get_length() if dim.is_static else None for dim in shape], model)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(network, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, image: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: image})
        return np.asarray(result[self.compiled.output(0)]).astype(np.int64, copy=False)
