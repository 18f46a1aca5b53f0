"""OpenVINO runtime on the CPU, reading the simplified ONNX model (or an NNCF IR) directly.

The inference precision is always set: left alone, OpenVINO computes bf16 on CPUs with native BF16
(AVX512_BF16, AMX), so an "fp32" run would silently be a bf16 one there. fp32 and bf16 run the
simplified ONNX (variant openvino-fp32-winograd: rule winograd_onnx's rewrite), int8 the NNCF IR of
rule quantize_openvino.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ...cpu import require_bf16
from ..base import FileRunner, static_image_shape

PRECISIONS = ("fp32", "bf16", "int8")

# INFERENCE_PRECISION_HINT per requested precision: an int8 model's float ops (classifier, resize) stay f32.
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
# OpenVINO element type names -> this project's precision names.
ELEMENT_TYPES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
# Execution-graph layers that do the arithmetic: their runtime precision is what the model computes in.
COMPUTE_LAYERS = frozenset({"Convolution", "GroupConvolution", "Deconvolution", "MatMul", "FullyConnected"})
INT8_TYPES = frozenset({"u8", "i8"})


def openvino_precision(hint: str, fake_quantize: int, compute: Mapping[str, int] | None = None) -> str:
    """What a compiled model computes: int8 when the model quantizes (FakeQuantize; a QDQ ONNX is read as
    FakeQuantize too) and the runtime really runs compute layers in u8/i8 (``compute``: their runtime
    precisions, None when unreadable), else the compiled INFERENCE_PRECISION_HINT (f32 -> fp32)."""
    if fake_quantize and (compute is None or INT8_TYPES & set(compute)):
        return "int8"
    return ELEMENT_TYPES.get(hint, hint)


def compute_precisions(layers: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Runtime precisions of the compute layers among (layerType, runtimePrecision) pairs, counted."""
    return dict(Counter(precision for layer, precision in layers if layer in COMPUTE_LAYERS).most_common())


def runtime_layers(compiled: object) -> list[tuple[str, str]] | None:
    """(layerType, runtimePrecision) of each op of the compiled model's execution graph; None if unreadable."""
    try:
        return [
            (op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
            for op in compiled.get_runtime_model().get_ops()  # type: ignore[attr-defined]
        ]
    except (RuntimeError, KeyError, AttributeError):  # a plugin or version without these rt_info keys
        return None


def openvino_evidence(version: str, hint: str, fake_quantize: int, compute: Mapping[str, int] | None) -> str:
    parts = [f"OpenVINO {version} compiled model INFERENCE_PRECISION_HINT={hint}"]
    parts.append(f"the model holds {fake_quantize} FakeQuantize ops (int8)" if fake_quantize else "no FakeQuantize ops")
    if compute is not None:
        parts.append("runtime compute layers: " + ", ".join(f"{count} {kind}" for kind, count in compute.items()))
    return "; ".join(parts)


class OpenVinoBackend(FileRunner):
    name = "openvino"

    def __init__(self, model: Path, threads: int, precision: str = "fp32") -> None:
        import openvino as ov

        if precision == "bf16":
            require_bf16("precision bf16 (openvino)", instead=tuple(other for other in PRECISIONS if other != "bf16"))
        core = ov.Core()
        network = core.read_model(str(model))
        shape = network.input(0).get_partial_shape()
        self.input_shape = static_image_shape([dim.get_length() if dim.is_static else None for dim in shape], model)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(network, "CPU", config)
        self.request = self.compiled.create_infer_request()
        # What the compiled model says, not what was asked: the plugin may adjust a hint.
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in network.get_ops())
        layers = runtime_layers(self.compiled)
        compute = compute_precisions(layers) if layers is not None else None
        self.inference_precision = openvino_precision(hint, fake_quantize, compute)
        self.precision_evidence = openvino_evidence(ov.get_version().split("-")[0], hint, fake_quantize, compute)

    def run(self, image: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: image})
        return np.asarray(result[self.compiled.output(0)]).astype(np.int64, copy=False)
