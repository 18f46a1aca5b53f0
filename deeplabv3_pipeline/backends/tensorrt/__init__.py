"""TensorRT: engines built per GPU by rule build_engine (:mod:`.engine`, scripts/build_engine.py) and run
with the CUDA runtime bindings (:mod:`.runner`). TensorRT and cuda-python are imported when an engine
is built or opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.options import option
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step

from ..base import Config, LayerCompare
from . import engine as engines
from . import layers
from .runner import TensorRTBackend

SUMMARY = "NVIDIA TensorRT engines (fp32, fp16, int8 from a symmetric Q/DQ model), built per GPU"
PRECISIONS = engines.PRECISIONS
RUNS_ON_CPU = False


def model_steps(precision: str, config: Config) -> list[Step]:
    """An engine per precision (rule build_engine), from the simplified ONNX, its fp16 conversion (rule
    convert_fp16: TensorRT 11 computes in the model's types) or rule quantize_tensorrt's symmetric Q/DQ model."""
    source = {"fp16": [artifacts.CONVERT_FP16], "int8": [artifacts.QUANTIZE_TENSORRT]}.get(precision, [])
    return [*artifacts.ONNX_STEPS, *source, artifacts.BUILD_ENGINE.format(precision=precision)]


# tensorrt-int8-mixed, tensorrt-fp16-mixed: engines of the symmetric Q/DQ model or the fp16 model with the
# fewest layers kept in float for int8.target / fp16.target (searched here, in ONNX Runtime)
MIXED_PRECISIONS = ("fp16", "int8")


def mixed_model_steps(precision: str, config: Config) -> list[Step]:
    source = {"fp16": artifacts.CONVERT_FP16_MIXED, "int8": artifacts.QUANTIZE_TENSORRT_MIXED}[precision]
    return [*artifacts.ONNX_STEPS, source, artifacts.BUILD_ENGINE_MIXED.format(precision=precision)]


@dataclass(frozen=True)
class Options:
    device: int = option(0, "accelerator id: the GPU", config="tensorrt.device")


def environment_problems(config: Config) -> list[str]:
    return engines.environment_problems()


def open_model(model: Path, precision: str, threads: int, options: Options) -> TensorRTBackend:
    return TensorRTBackend(model, device=options.device, precision=precision)


# the per-layer comparison: this backend's own tool, planned (its runtime is not here)
LAYER_COMPARE = LayerCompare(tools=("polygraphy",), commands=layers.polygraphy_commands)
