"""deeplabv3_pipeline.model.opcount: the ONNX operation count the benchmark divides by time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.utils.flop_counter import FlopCounterMode

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.mmseg_model import load_export_model
from deeplabv3_pipeline.model.opcount import COUNTING_RULES, count_operations

from ..conftest import MODEL_CONFIG, SHAPE


def tiny_model(path: Path, height: int | str = 8) -> Path:
    """Conv 3->4 (3x3, pad 1, bias) -> Relu -> bilinear Resize x2 -> ArgMax, on a (1,3,8,8) input."""
    weight = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "bias")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["image", "weight", "bias"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Resize", ["relu", "", "scales"], ["resized"], mode="linear"),
        helper.make_node("ArgMax", ["resized"], ["ids"], axis=1, keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, 8])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, None)],
        [weight, bias, scales],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_tiny_graph_is_counted_by_the_documented_rules(tmp_path):
    counted = count_operations(tiny_model(tmp_path / "tiny.onnx"))
    conv_outputs = 4 * 8 * 8
    expected = {
        "Conv": 2 * conv_outputs * 3 * 3 * 3 + conv_outputs,  # 2 x MACs + the bias
        "Relu": conv_outputs,
        "Resize": 8 * 4 * 16 * 16,  # bilinear: 8 per output element
        "ArgMax": 4 * 16 * 16,  # 1 per input element
    }
    assert counted == {"total": sum(expected.values()), "by_op": dict(sorted(expected.items()))}
    assert all(op in COUNTING_RULES for op in expected)


def test_a_dynamic_input_is_refused_not_counted_as_zero(tmp_path):
    with pytest.raises(UserError, match="not fixed"):
        count_operations(tiny_model(tmp_path / "dynamic.onnx", height="height"))


def test_an_unreadable_model_is_a_user_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(UserError, match="cannot count the operations of"):
        count_operations(broken)


def test_flop_count_matches_torch_flop_counter(onnx_models, checkpoint):
    """The ONNX graph count (Conv 2 x MACs + small extras) against torch's own counter (matmul/conv only)."""
    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, *SHAPE))
    counted = count_operations(onnx_models[1])
    assert counted["by_op"]["Conv"] == pytest.approx(counter.get_total_flops(), rel=0.01)
    assert counted["total"] == pytest.approx(counter.get_total_flops(), rel=0.01)
