"""Winograd rewrite: the algebra, single convolutions against the direct ones, the CLI on the demo model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deeplabv3_pipeline.evaluation.metrics import pixel_agreement
from deeplabv3_pipeline.optimize.winograd import (
    ALGORITHMS,
    apply_winograd,
    eligible,
    multiply_ratio,
    padded_work,
    tile_blocks,
    transform_weights,
)

from ..conftest import SHAPE, run_script


@pytest.mark.parametrize("tile", sorted(ALGORITHMS))
def test_one_dimensional_transform_is_a_correlation(tile):
    algorithm = ALGORITHMS[tile]
    rng = np.random.default_rng(tile)
    signal, kernel = rng.standard_normal(tile + 2), rng.standard_normal(3)
    winograd = algorithm.output_transform @ (
        (algorithm.weight_transform @ kernel) * (algorithm.input_transform @ signal)
    )
    direct = np.array([signal[i : i + 3] @ kernel for i in range(tile)])
    np.testing.assert_allclose(winograd, direct, rtol=1e-12, atol=1e-12)


def test_weight_transform_layout():
    weight = np.arange(2 * 5 * 9, dtype=np.float32).reshape(2, 5, 3, 3)
    transformed = transform_weights(weight, ALGORITHMS[4])
    assert transformed.shape == (6, 6, 2, 5) and transformed.dtype == np.float32
    # Corner (0, 0) of G g G^T is g[0, 0] / 16 for F(4, 3).
    np.testing.assert_allclose(transformed[0, 0], weight[:, :, 0, 0] / 16)


def test_tiling_and_work_figures():
    assert tile_blocks(128, 36, 4) == 1 and tile_blocks(256, 36, 4) == 2 and tile_blocks(128, 1, 2) == 64
    assert padded_work(128, 256, 1, 4) == 1.0
    assert padded_work(128, 256, 36, 4) == pytest.approx(144 * 288 / (128 * 256))
    assert multiply_ratio(128, 256, 1, 2) == pytest.approx(16 / 36)
    assert multiply_ratio(128, 256, 1, 4) == pytest.approx(36 / 144)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"pads": [1, 1, 1, 1]}, True),
        ({"pads": [4, 4, 4, 4], "dilations": [4, 4]}, True),
        ({"pads": [1, 1, 1, 1], "strides": [2, 2]}, False),
        ({"pads": [1, 1, 1, 1], "group": 2}, False),
        ({"pads": [0, 0, 0, 0]}, False),
        ({"pads": [2, 2, 2, 2], "dilations": [2, 1]}, False),
    ],
)
def test_only_same_padded_stride_one_3x3_convolutions_are_eligible(attributes, expected):
    assert eligible(attributes, np.zeros((8, 8, 3, 3)), [1, 8, 16, 16]) is expected
    assert not eligible(attributes, np.zeros((8, 8, 1, 1)), [1, 8, 16, 16])
    assert not eligible(attributes, np.zeros((8, 8, 3, 3)), [2, 8, 16, 16])  # one image only


def conv_model(channels: int, kernels: int, height: int, width: int, dilation: int, bias: bool) -> onnx.ModelProto:
    """Conv (+ bias) -> Relu on one (1, C, H, W) input: a backbone block's 3x3 convolution."""
    rng = np.random.default_rng(channels + dilation)
    weight = (rng.standard_normal((kernels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
    initializers = [numpy_helper.from_array(weight, "weight")]
    if bias:
        initializers.append(numpy_helper.from_array(rng.standard_normal(kernels).astype(np.float32), "bias"))
    conv = helper.make_node(
        "Conv",
        ["x", *[tensor.name for tensor in initializers]],
        ["y"],
        name="conv",
        kernel_shape=[3, 3],
        pads=[dilation] * 4,
        dilations=[dilation, dilation],
    )
    graph = helper.make_graph(
        [conv, helper.make_node("Relu", ["y"], ["z"], name="relu")],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, height, width])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, kernels, height, width])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def run_onnxruntime(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image})[0]


@pytest.mark.parametrize("tile", sorted(ALGORITHMS))
@pytest.mark.parametrize(
    ("channels", "height", "width", "dilation", "bias"),  # 12 and 36: mostly padding, rewritten all the same
    [(8, 12, 20, 1, True), (16, 13, 17, 2, False), (32, 9, 9, 4, True), (24, 16, 32, 12, True), (8, 7, 30, 36, False)],
)
def test_rewritten_convolution_equals_the_direct_one(tile, channels, height, width, dilation, bias):
    model = conv_model(channels, 6, height, width, dilation, bias)
    rewritten, sites, _ = apply_winograd(model, outputs=tile, min_channels=1, max_ratio=np.inf)
    onnx.checker.check_model(rewritten, full_check=True)
    assert len(sites) == 1 and not any(node.op_type == "Conv" for node in rewritten.graph.node)
    image = np.random.default_rng(7).standard_normal((1, channels, height, width)).astype(np.float32)
    direct, winograd = run_onnxruntime(model, image), run_onnxruntime(rewritten, image)
    assert winograd.shape == direct.shape
    np.testing.assert_allclose(winograd, direct, atol=1e-4 * float(np.abs(direct).max()))


def test_openvino_runs_the_rewritten_graph_to_the_same_values():
    import openvino as ov

    model = conv_model(16, 8, 16, 24, 3, True)
    rewritten, _, _ = apply_winograd(model, outputs=4, min_channels=1, max_ratio=np.inf)
    image = np.random.default_rng(3).standard_normal((1, 16, 16, 24)).astype(np.float32)
    network = ov.Core().read_model(rewritten.SerializeToString(), b"")
    # f32 pinned: on a CPU with BF16 OpenVINO's default is bf16 (the backend pins it the same way)
    compiled = ov.Core().compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(image)[0], run_onnxruntime(model, image), atol=1e-4)


def test_convolutions_whose_tiles_are_mostly_padding_stay_direct():
    model = conv_model(8, 6, 16, 32, 12, True)  # blocks of 48x48 cover 4.5x the 16x32 map
    rewritten, sites, unprofitable = apply_winograd(model, outputs=4, min_channels=1)
    assert sites == [] and len(unprofitable) == 1
    assert [node.op_type for node in rewritten.graph.node] == ["Conv", "Relu"]


def test_narrow_convolutions_stay_direct():
    model = conv_model(8, 6, 12, 20, 1, True)
    rewritten, sites, _ = apply_winograd(model, outputs=4, min_channels=16)
    assert sites == [] and [node.op_type for node in rewritten.graph.node] == ["Conv", "Relu"]


@pytest.fixture(scope="module")
def winograd_model(tmp_path_factory, guide_models, prep_dir) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("winograd") / "deeplabv3_sim_bs1_winograd.onnx"
    run_script("winograd_onnx.py", guide_models[1], output, "--check-data", prep_dir, "--check-images", 2)
    return output, json.loads(output.with_suffix(".json").read_text())


def test_cli_rewrites_the_wide_3x3_convolutions_of_the_model(winograd_model, guide_models, prep_dir):
    path, report = winograd_model
    # The guide's R50-D8: its dilated backbone's 3x3 convolutions with >= 256 inputs and the bottleneck; on the 8x16
    # feature map of this tiny shape the ASPP branches (dilation 12-36) would be mostly padding.
    assert [site["dilation"] for site in report["sites"]] == [1, 2, 2, 2, 2, 2, 2, 4, 4, 1]
    assert [site["dilation"] for site in report["left_direct"]] == [12, 24, 36]
    assert all(site["multiply_ratio"] > 0.75 for site in report["left_direct"])
    assert report["tile"] == 4 and report["agreement"]["runtime"] == "openvino"
    model = onnx.load(str(path))
    assert [item.name for item in model.graph.input] == ["input"] and model.graph.output[0].name == "output"
    assert sum(node.op_type == "Conv" for node in model.graph.node) == 62 - 10
    direct = ort.InferenceSession(str(guide_models[1]), providers=["CPUExecutionProvider"])
    winograd = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for bin_path in sorted(prep_dir.glob("*.bin")):
        image = np.fromfile(bin_path, np.float32).reshape(1, 3, *SHAPE)
        expected, got = direct.run(None, {"input": image})[0], winograd.run(None, {"input": image})[0]
        assert got.dtype == np.int64 and got.shape == (1, 1, *SHAPE)
        # Float rounding only: a near-tie may flip, nothing more (random weights are near-ties everywhere).
        assert pixel_agreement(expected, got) > 0.99
    assert report["agreement"]["mean"] > 0.99


def test_cli_gate_and_bad_input(guide_models, prep_dir, tmp_path):
    output = tmp_path / "w.onnx"
    failed = run_script(  # the bottleneck alone (2560 inputs): a small rewrite, the same gate
        "winograd_onnx.py",
        *(guide_models[1], output, "--min-channels", 2048, "--check-data", prep_dir, "--min-agreement", 1.01),
        check=False,
    )
    assert failed.returncode == 2 and "below --min-agreement" in failed.stderr
    assert not output.exists() and output.with_suffix(".json").is_file()  # the report says why
    missing = run_script("winograd_onnx.py", tmp_path / "none.onnx", output, "--check-images", 0, check=False)
    assert missing.returncode == 2 and "run simplify_onnx first" in missing.stderr
    assert "Traceback" not in missing.stderr + failed.stderr
