"""In-process inference backends behind one interface: ``run(image) -> class ids``.

Every backend takes a normalised float32 (1,3,H,W) image and returns int64 (1,1,H,W)
class ids, the layout of the exported ONNX model. Ascend is not in-process: ais_bench runs
it as a separate program (see :mod:`deeplabv3_pipeline.ascend`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UserError

IN_PROCESS_BACKENDS = ("onnxruntime", "openvino", "pytorch", "tensorrt")


class Backend(Protocol):
    name: str
    input_shape: tuple[int, int]

    def run(self, image: np.ndarray) -> np.ndarray: ...


def open_backend(
    name: str,
    model: Path,
    *,
    threads: int = 0,
    model_config: str | None = None,
    input_shape: tuple[int, int] | None = None,
    providers: list[str] | None = None,
    precision: str = "fp32",
) -> Backend:
    """Load ``model`` for backend ``name``. ``threads`` = 0 lets the runtime choose."""
    model = Path(model)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist: run the workflow's export rules first")
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, threads=threads, providers=providers or ["CPUExecutionProvider"])
    if name == "tensorrt":
        from .onnxruntime_backend import OnnxRuntimeBackend, tensorrt_providers

        return OnnxRuntimeBackend(model, threads=threads, providers=tensorrt_providers(model, precision), name=name)
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(model, threads=threads)
    if name == "pytorch":
        from .pytorch_backend import PyTorchBackend

        if model_config is None or input_shape is None:
            raise UserError("the pytorch backend needs --model-config and --input-shape besides the checkpoint")
        return PyTorchBackend(model, model_config, input_shape, threads=threads)
    raise UserError(f"unknown backend {name!r}: choose one of {', '.join(IN_PROCESS_BACKENDS)} or ascend")


def static_image_shape(shape: list, source: Path) -> tuple[int, int]:
    """(H, W) of a model input declared as (1, 3, H, W) with fixed sizes."""
    if len(shape) != 4 or not all(isinstance(size, int) for size in shape[2:]):
        raise UserError(f"model {source} input shape {shape} is not a fixed (1,3,H,W): export it with a fixed shape")
    return int(shape[2]), int(shape[3])
