"""Every tensor a model computes in OpenVINO, by its ONNX name, for the per-layer comparison
(deeplabv3_pipeline/evaluation/layers.py).

Parts of the read model are compiled with the ONNX graph's tensors as their outputs, a few GB of them per
part, each part only the ops those outputs need (the first part stops after the stem and layer1); the
model file is not changed. OpenVINO's ONNX reader keeps the ONNX tensor names on the outputs of
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

from deeplabv3_pipeline.evaluation.layers import output_groups

from .runner import HINTS

FLOAT_TYPES = ("f32", "f16", "bf16")
SKIPPED_OPS = frozenset({"Parameter", "Constant", "Result"})


class OpenVinoTensors:
    how = "OpenVINO (CPU) on parts of the model with the ONNX graph's tensors as outputs, a few GB of them per part"
    owned = True  # (arrays of its own that OpenVINO wrote into)
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
        """One compiled part per group of outputs (GROUP_BYTES of them at most), one after another: OpenVINO
        gives every output a buffer of its own, and R50-D8's int8 IR with all of them at once took 24 GB.
        A part is the ops its outputs need and no more (the model's own output is not one of them): at
        1024x2048 the four parts of R50-D8 int8 took 29 s in all, against 51 s for four whole copies
        with the same outputs added, and gave the same values."""
        import openvino as ov
        import openvino.opset13 as ops

        sink(self.input_name, image)
        for group in self.groups:
            network = self.core.read_model(str(self.model_path))
            sources = [source for source, _ in named_outputs(network, self.wanted)]
            part = ov.Model([ops.result(sources[index]) for index in group], network.get_parameters(), "part")
            compiled = self.core.compile_model(part, "CPU", self.config)
            request = compiled.create_infer_request()
            # OpenVINO writes each output into a new array of ours (handed on as it is: ``owned``)
            values = [
                np.empty(tuple(output.get_shape()), output.get_element_type().to_dtype()) for output in compiled.outputs
            ]
            for position, value in enumerate(values):
                request.set_output_tensor(position, ov.Tensor(value, shared_memory=True))
            request.infer({0: image})
            del request, compiled
            for position, index in enumerate(group):
                value, values[position] = np.asarray(values[position], dtype=np.float32), None
                for name in self.names[index]:
                    sink(name, value)


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


# the outputs of one compiled part, at most (a tensor larger than this is a group of its own): OpenVINO took
# about twice its outputs' size (24 GB for R50-D8 int8's 11.6 GB at 1024x2048); 4 GB groups were slower than
# 3 GB (128 s against 71 s at 1024x2048, when the reference's tensors were spilled to disk and then fell out
# of the page cache)
GROUP_BYTES = 3 << 30


def tensor_bytes(output) -> int:
    """Bytes of an op output as float32 (0 where its shape is not static)."""
    shape = output.get_partial_shape()
    return 4 * int(np.prod([dim.get_length() for dim in shape])) if shape.is_static else 0
