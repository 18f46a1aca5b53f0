"""Graph optimizations of the exported ONNX model: the Winograd rewrite, fp16 weights, int8 quantization."""
