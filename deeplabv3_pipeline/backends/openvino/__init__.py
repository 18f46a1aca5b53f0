"""OpenVINO on the CPU, reading the simplified ONNX model (or an NNCF IR) directly, the precision
pinned (:mod:`.runner`); int8 is the NNCF IR of rule quantize_openvino (:mod:`.quantize`).
"""

from __future__ import annotations

from pathlib import Path

from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step

from ..base import Config, NoOptions, Quantizer
from . import quantize
from .runner import PRECISIONS as PRECISIONS  # the registry reads it here
from .runner import OpenVinoBackend
from .tensors import OpenVinoTensors

SUMMARY = "OpenVINO on the CPU (precision pinned with INFERENCE_PRECISION_HINT)"
# OpenVINO fuses the Winograd transforms' elementwise chains: 1.5x at 1024x2048 (docs/performance.md)
WINOGRAD = True
QUANTIZER = Quantizer(run=quantize.quantize_openvino, versions=quantize.versions, mixed=quantize.quantize_mixed)


def model_steps(precision: str, config: Config) -> list[Step]:
    """int8 runs the NNCF IR; fp32 and bf16 the simplified ONNX (variant openvino-fp32-winograd: the
    Winograd rewrite of it, deeplabv3_pipeline/planning/variants.py)."""
    if precision == "int8":
        return [*artifacts.ONNX_STEPS, artifacts.QUANTIZE_OPENVINO]
    return list(artifacts.ONNX_STEPS)


# openvino-int8-mixed: NNCF's quantize_with_accuracy_control for int8.target (:mod:`.quantize`)
MIXED_PRECISIONS = ("int8",)


def mixed_model_steps(precision: str, config: Config) -> list[Step]:
    return [*artifacts.ONNX_STEPS, artifacts.QUANTIZE_OPENVINO_MIXED]


def open_model(model: Path, precision: str, threads: int, options: NoOptions) -> OpenVinoBackend:
    return OpenVinoBackend(model, threads=threads, precision=precision)


def open_tensors(model: Path, precision: str, threads: int, options: NoOptions, graph: Path) -> OpenVinoTensors:
    """Every float op output named as a tensor of the ONNX ``graph`` (OpenVINO keeps the ONNX names)."""
    from deeplabv3_pipeline.evaluation.layers import tensor_names

    return OpenVinoTensors(model, precision, threads, tensor_names(graph))
