"""The guide's ``python3 -m onnxsim`` step: the exported graph simplified with its input shape fixed.

The guide used onnx-simplifier 0.3.6 flags (``--input-shape``, ``--dynamic-input-shape``); since 0.4
the shape is ``overwrite_input_shapes`` and the batch stays fixed (bs1). No torch here: a job that
only simplifies does not pay for importing it.
"""

from __future__ import annotations

from pathlib import Path

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import save_onnx


def simplify_onnx(source: Path, destination: Path, input_shape: list[int]) -> int:
    """onnxsim over ``source`` with the input fixed to ``input_shape`` (the guide's ``python3 -m onnxsim``
    step), written atomically to ``destination``; the simplified graph's node count."""
    import onnx
    from onnxsim import simplify

    if not source.is_file():
        raise UserError(f"ONNX model {source} does not exist: run export_onnx first")
    model = onnx.load(str(source))
    input_name = model.graph.input[0].name
    simplified, valid = simplify(model, overwrite_input_shapes={input_name: input_shape})
    if not valid:
        raise UserError(f"onnxsim could not validate the simplified {source}: keep the unsimplified model")
    save_onnx(simplified, destination)
    return len(simplified.graph.node)
