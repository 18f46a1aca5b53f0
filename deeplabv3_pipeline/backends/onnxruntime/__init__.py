"""ONNX Runtime: the CPU default, and NVIDIA GPUs through onnxruntime-gpu's CUDA execution provider
(``onnxruntime.providers: [CUDAExecutionProvider, CPUExecutionProvider]``).

fp32 runs the simplified ONNX model; int8 the static QDQ model of rule quantize_onnx (:mod:`.quantize`).
The wrapper is in :mod:`.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.options import option
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step

from ..base import Config, Quantizer
from . import mixed, quantize
from .runner import PRECISIONS as PRECISIONS  # the registry reads it here
from .runner import OnnxRuntimeBackend
from .tensors import OnnxTensors


def model_steps(precision: str, config: Config) -> list[Step]:
    extra = [artifacts.QUANTIZE_ONNX] if precision == "int8" else []
    return [*artifacts.ONNX_STEPS, *extra]


# onnxruntime-int8-mixed: the Q/DQ model with the fewest layers in float for int8.target (:mod:`.mixed`)
MIXED_PRECISIONS = ("int8",)


def mixed_model_steps(precision: str, config: Config) -> list[Step]:
    return [*artifacts.ONNX_STEPS, artifacts.QUANTIZE_ONNX_MIXED]


SUMMARY = "ONNX Runtime (CPU by default; CUDA through onnxruntime.providers)"
WINOGRAD = True  # runs the rewrite slower than the direct graph: timed on request (planning/variants.py)
QUANTIZER = Quantizer(run=quantize.quantize_onnxruntime, versions=quantize.versions, mixed=mixed.quantize_mixed)


@dataclass(frozen=True)
class Options:
    providers: tuple[str, ...] = option(
        ("CPUExecutionProvider",), "execution providers, in order", config="onnxruntime.providers"
    )


def open_model(model: Path, precision: str, threads: int, options: Options) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model, threads=threads, providers=list(options.providers))


def open_tensors(model: Path, precision: str, threads: int, options: Options, graph: Path) -> OnnxTensors:
    """The model's float tensors named as in the ONNX ``graph`` (a QDQ or fp16 copy keeps the names)."""
    from deeplabv3_pipeline.evaluation.layers import tensor_names

    return OnnxTensors(model, tensor_names(graph))
