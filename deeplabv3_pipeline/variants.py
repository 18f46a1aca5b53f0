"""Variants: backend x precision [x the Winograd graph], named ``backend-precision[-winograd]`` (the
benchmark's vocabulary, and the schema's; tests/test_config.py ties the schema's enums to this table)."""

from __future__ import annotations

# variant -> (backend, precision, Winograd graph); the model is the backend's own (backends/).
VARIANTS: dict[str, tuple[str, str, bool]] = {
    "pytorch-fp32": ("pytorch", "fp32", False),
    "pytorch-bf16": ("pytorch", "bf16", False),
    "onnxruntime-fp32": ("onnxruntime", "fp32", False),
    "onnxruntime-int8": ("onnxruntime", "int8", False),
    "onnxruntime-fp32-winograd": ("onnxruntime", "fp32", True),
    "openvino-fp32": ("openvino", "fp32", False),
    "openvino-bf16": ("openvino", "bf16", False),
    "openvino-int8": ("openvino", "int8", False),
    "openvino-fp32-winograd": ("openvino", "fp32", True),
}
# Timed by name only: ONNX Runtime runs the Winograd graph slower than the direct one.
ON_REQUEST = ("onnxruntime-fp32-winograd",)
