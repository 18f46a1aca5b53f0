"""ONNX Runtime: the CPU default, and NVIDIA GPUs through onnxruntime-gpu's CUDA execution provider
(``onnxruntime.providers: [CUDAExecutionProvider, CPUExecutionProvider]``).

fp32 runs the simplified ONNX model; int8 the static QDQ model of rule quantize_onnx (:mod:`.quantize`).
The wrapper is in :mod:`.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ... import artifacts
from ...artifacts import Step
from ..base import BackendSpec, Config, Quantizer
from ..options import option
from . import quantize
from .runner import PRECISIONS, OnnxRuntimeBackend


def model_steps(precision: str, config: Config) -> list[Step]:
    extra = [artifacts.QUANTIZE_ONNX] if precision == "int8" else []
    return [*artifacts.ONNX_STEPS, *extra]


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    providers: tuple[str, ...] = option(
        ("CPUExecutionProvider",), "execution providers, in order", config="onnxruntime.providers"
    )


def open_model(model: Path, precision: str, threads: int, options: OnnxRuntimeOptions) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model, threads=threads, providers=list(options.providers))


SPEC = BackendSpec(
    name="onnxruntime",
    summary="ONNX Runtime (CPU by default; CUDA through onnxruntime.providers)",
    precisions=PRECISIONS,
    open=open_model,
    model_steps=model_steps,
    options=OnnxRuntimeOptions,
    winograd=True,  # runs the rewrite slower than the direct graph: timed on request (variants.py)
    quantizer=Quantizer(run=quantize.quantize_onnxruntime, versions=quantize.versions),
)
