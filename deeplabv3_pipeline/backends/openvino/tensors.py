"""Every tensor a model computes in OpenVINO, by its ONNX name, for the per-layer comparison
(deeplabv3_pipeline/evaluation/layers.py).

Copies of the read model get the ONNX graph's tensors as extra outputs (``Model.add_outputs``), a few GB
of them per copy; the model file is not changed. OpenVINO's ONNX reader keeps the ONNX tensor names on the outputs of
the ops it makes, and NNCF's int8 IR keeps them too, so the names match the ONNX graph's. In an int8
IR a tensor that a FakeQuantize reads is compared as that FakeQuantize's output, the tensor as the
layers after it read it (as :func:`..onnxruntime.tensors.quantized_views` does for QDQ). The outputs
keep OpenVINO from fusing across them, as Polygraphy's ``mark all`` does TensorRT: the figures are
those of each layer of the same precision, not of the fused graph the cell timed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from .runner import HINTS

FLOAT_TYPES = ("f32", "f16", "bf16")
SKIPPED_OPS = frozenset({"Parameter", "Constant", "Result"})


class OpenVinoTensors:
    how = "OpenVINO (CPU) on copies of the model with the ONNX graph's tensors as outputs, a few GB of them per copy"
    owned = False  # (views of the infer request's buffers)
    streams = False

    def __init__(self, model_path: Path, precision: str, threads: int, wanted: Collection[str]) -> None:
        """``wanted``: the tensor names the comparison reads (the ONNX graph's): only op outputs that carry
        one become outputs, and a tensor a FakeQuantize reads is read through it, not as well as it."""
        import openvino as ov

        self.core, self.model_path, self.wanted = ov.Core(), model_path, set(wanted)
        network = self.core.read_model(str(model_path))
        self.input_name = network.input(0).get_any_name()
        outputs = named_outputs(network, self.wanted)
        self.names = [names for _, names in outputs]
        self.groups = output_groups([tensor_bytes(source) for source, _ in outputs], GROUP_BYTES)
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": HINTS[precision]}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads

    def dump(self, image: np.ndarray, sink: Callable[[str, np.ndarray], None]) -> None:
        """One compiled copy per group of outputs (GROUP_BYTES of them at most), one after another: OpenVINO
        gives every output a buffer of its own, and R50-D8's int8 IR with all of them at once took 24 GB."""
        sink(self.input_name, image)
        for group in self.groups:
            network = self.core.read_model(str(self.model_path))
            sources = [source for source, _ in named_outputs(network, self.wanted)]
            first = len(network.outputs)  # the model's own outputs come first, then the added ones, in order
            network.add_outputs([sources[index] for index in group])
            request = self.core.compile_model(network, "CPU", self.config).create_infer_request()
            request.infer({0: image})
            for position, index in enumerate(group):
                value = np.asarray(request.get_output_tensor(first + position).data, dtype=np.float32)
                for name in self.names[index]:
                    sink(name, value)
            del request


def named_outputs(network, wanted: set[str]) -> list[tuple[object, list[str]]]:
    """(what to read, its ONNX names) of every float op output of ``network`` named as a ``wanted`` tensor, in
    the graph's order: the output itself, or the FakeQuantize that reads it (int8: as the next layer reads it)."""
    outputs = []
    for op in network.get_ordered_ops():
        if op.get_type_name() in SKIPPED_OPS:
            continue
        for output in op.outputs():
            names = sorted(set(output.get_names()) & wanted)
            if output.get_element_type().get_type_name() not in FLOAT_TYPES or not names:
                continue
            readers = [target.get_node() for target in output.get_target_inputs()]
            quantizers = [node for node in readers if node.get_type_name() == "FakeQuantize"]
            outputs.append((quantizers[0].output(0) if quantizers else output, names))
    return outputs


# the outputs of one compiled copy, at most (a tensor larger than this is a group of its own): OpenVINO took
# about twice its outputs' size (24 GB for R50-D8 int8's 11.6 GB at 1024x2048); 4 GB groups were slower than
# 3 GB (128 s against 71 s at 1024x2048: the reference's spilled tensors then fell out of the page cache)
GROUP_BYTES = 3 << 30


def tensor_bytes(output) -> int:
    """Bytes of an op output as float32 (0 where its shape is not static)."""
    shape = output.get_partial_shape()
    return 4 * int(np.prod([dim.get_length() for dim in shape])) if shape.is_static else 0


def output_groups(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices of ``sizes`` in groups whose sizes add up to at most ``budget`` (a size over it
    alone), in order."""
    groups: list[list[int]] = []
    total = 0
    for index, size in enumerate(sizes):
        if not groups or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += size
    return groups
