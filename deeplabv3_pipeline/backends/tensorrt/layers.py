"""The per-layer comparison of a TensorRT engine with the fp32 ONNX model, planned as Polygraphy commands
(TensorRT is not on the machines this workflow is tested on). Polygraphy marks every tensor an output
(``mark all``), which changes the engine it builds (TensorRT issues #1961, #2571): its figures are of
each layer at the precision, not of the fused engine the cell timed.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import polygraphy_inputs

# Polygraphy's precision flags (TensorRT 10; TensorRT 11 builds strongly typed networks: --strongly-typed)
PRECISION_FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}


def polygraphy_commands(
    reference: Path,
    source: Path,
    model: Path,
    inputs: list[Path],
    folder: Path,
    input_shape: tuple[int, int],
    precision: str,
    options: object,
) -> list[list[str]]:
    """Two ``polygraphy run``: every tensor of the fp32 ONNX model in ONNX Runtime, saved; then every
    tensor of an engine built from ``source`` (the ONNX model the cell's engine ``model`` is built from:
    the fp16 conversion, the Q/DQ model) compared with them by name."""
    loader = f"{Path(polygraphy_inputs.__file__).resolve()}:load_data"
    environment = [
        "env",
        f"{polygraphy_inputs.INPUTS}={os.pathsep.join(map(str, inputs))}",
        f"{polygraphy_inputs.SHAPE}={input_shape[0]},{input_shape[1]}",
    ]
    saved = str(folder / "onnxruntime_outputs.json")
    return [
        [*environment, "polygraphy", "run", str(reference), "--onnxrt", "--onnx-outputs", "mark", "all",
         "--data-loader-script", loader, "--save-outputs", saved],
        [*environment, "polygraphy", "run", str(source), "--trt", *PRECISION_FLAGS[precision],
         "--trt-outputs", "mark", "all", "--data-loader-script", loader, "--load-outputs", saved,
         "--save-outputs", str(folder / "tensorrt_outputs.json")],
    ]  # fmt: skip
