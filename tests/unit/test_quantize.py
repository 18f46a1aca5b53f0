"""int8 quantization: the CLI's model keeps the interface, its tail stays float, calibration reads the real bins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.metrics import pixel_agreement
from deeplabv3_pipeline.optimize.quantize import (
    BinCalibrationReader,
    float_tail_nodes,
    held_out_files,
    select_calibration_files,
)

from ..conftest import SHAPE, run_script

TAIL = ["/conv_seg/Conv", "/Resize_1", "/ArgMax"]  # node names of the exported encode_decode


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def demo_images(prep_dir: Path) -> list[np.ndarray]:
    return [np.fromfile(path, np.float32).reshape(1, 3, *SHAPE) for path in sorted(prep_dir.glob("*.bin"))]


def test_quantized_model_keeps_the_interface_and_runs(int8_model, prep_dir):
    path, _ = int8_model
    model = onnx.load(str(path))
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "input" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph_output.name == "output" and graph_output.type.tensor_type.elem_type == onnx.TensorProto.INT64
    # QDQ around every convolution: each reads dequantized int8 activations (the classifier too: only its
    # weights stay float, test_classifier_resize_and_argmax_stay_float)
    producers = {output: node for node in model.graph.node for output in node.output}
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    fed_quantized = [conv for conv in convolutions if producers[conv.input[0]].op_type == "DequantizeLinear"]
    assert len(convolutions) > 20 and len(fed_quantized) == len(convolutions)
    (prediction,) = session(path).run(None, {"input": demo_images(prep_dir)[0]})
    assert prediction.dtype == np.int64 and prediction.shape == (1, 1, *SHAPE)
    assert prediction.min() >= 0 and prediction.max() < 19


def test_classifier_resize_and_argmax_stay_float(int8_model):
    path, record = int8_model
    assert record["float_nodes"] == TAIL
    graph = onnx.load(str(path)).graph
    nodes = {node.name: node for node in graph.node}
    weights = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in nodes.values() for output in node.output}
    argmax, resize, classifier = (nodes[name] for name in reversed(TAIL))
    assert producers[argmax.input[0]] is resize  # no Q/DQ pair between them: float logits reach the argmax
    assert producers[resize.input[0]] is classifier
    assert weights[classifier.input[1]].data_type == onnx.TensorProto.FLOAT  # float weights, no DequantizeLinear
    assert producers[classifier.input[0]].op_type == "DequantizeLinear"  # fed by the quantized trunk


def test_int8_agrees_with_fp32_on_the_demo_images(int8_model, onnx_models, prep_dir):
    """Computed and reported, not gated tightly: an untrained checkpoint's logits are full of near-ties."""
    path, record = int8_model
    fp32, int8 = session(onnx_models[1]), session(path)
    bins = sorted(prep_dir.glob("*.bin"))
    agreement = {
        path.name: pixel_agreement(fp32.run(None, {"input": image})[0], int8.run(None, {"input": image})[0])
        for path, image in zip(bins, demo_images(prep_dir), strict=True)
    }
    print("int8 vs fp32 pixel agreement on the demo images:", {name: round(v, 4) for name, v in agreement.items()})
    assert 0.5 < min(agreement.values()) <= 1.0
    check = record["agreement"]
    assert check["runtime"] == "onnxruntime" and check["held_out"] and len(check["per_image"]) == 1
    for name, value in check["per_image"].items():
        assert value == pytest.approx(agreement[name])


def test_calibration_reads_the_real_bins(int8_model, prep_dir):
    _, record = int8_model
    bins = sorted(prep_dir.glob("*.bin"))
    assert [Path(name) for name in record["calibration_files"]] == [bins[0], bins[-1]]  # spread over the list
    assert record["settings"]["per_channel"] and record["settings"]["quant_format"] == "QDQ"
    assert record["settings"]["calibration_images"] == 2 and record["input_shape"] == list(SHAPE)
    reader = BinCalibrationReader([bins[0], bins[-1]], "input", SHAPE)
    for expected in (bins[0], bins[-1]):
        batch = reader.get_next()
        np.testing.assert_array_equal(batch["input"], np.fromfile(expected, np.float32).reshape(1, 3, *SHAPE))
    assert reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is not None


def test_calibration_selection_is_even_and_deterministic(tmp_path):
    files = [tmp_path / f"{index:02d}.bin" for index in range(10)]
    assert select_calibration_files(files, 3) == [files[0], files[4], files[9]]
    assert select_calibration_files(list(reversed(files)), 20) == files
    assert held_out_files(files, [files[0], files[9]], 2) == [files[1], files[8]]
    assert held_out_files(files[:2], files[:2], 1) == files[:1]  # nothing held out: the calibration ones
    with pytest.raises(UserError, match="at least 1"):
        select_calibration_files(files, 0)
    with pytest.raises(UserError, match="no calibration images"):
        select_calibration_files([], 8)


def test_float_tail_is_the_classifier_and_what_follows(onnx_models):
    assert float_tail_nodes(onnx.load(str(onnx_models[1])).graph) == TAIL


def test_bad_inputs_give_one_clear_line(onnx_models, prep_dir, int8_model, tmp_path):
    short = tmp_path / "short" / "frankfurt_000000_000294_leftImg8bit.bin"
    short.parent.mkdir()
    short.write_bytes(np.zeros(100, np.float32).tobytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("not a model")
    output = tmp_path / "out.onnx"
    cases = [
        (
            (onnx_models[1], output, "--calibration-data", short.parent),
            "frankfurt_000000_000294_leftImg8bit.bin has 400",
        ),
        ((onnx_models[1], output, "--calibration-data", empty), "no *.bin files in calibration input folder"),
        ((onnx_models[1], output, "--calibration-data", tmp_path / "missing"), "does not exist: run preprocess"),
        ((int8_model[0], output, "--calibration-data", prep_dir), "is already quantized"),
        ((not_onnx, output, "--calibration-data", prep_dir), "is not a readable ONNX model"),
        ((onnx_models[1], output, "--calibration-data", prep_dir, "--calibration-images", 0), "at least 1"),
    ]
    for args, message in cases:
        result = run_script("quantize_onnx.py", *args, check=False)
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not output.exists()


def test_openvino_nncf_quantizer_writes_ir(onnx_models, prep_dir, tmp_path):
    pytest.importorskip("nncf")
    import openvino as ov

    output = tmp_path / "deeplabv3_sim_bs1_int8_ov.xml"
    run_script(
        "quantize_onnx.py",
        onnx_models[1],
        output,
        "--quantizer",
        "openvino",
        "--calibration-data",
        prep_dir,
        "--calibration-images",
        2,
        "--check-images",
        1,
    )
    record = json.loads(output.with_suffix(".json").read_text())
    convolutions = sum(node.op_type == "Conv" for node in onnx.load(str(onnx_models[1])).graph.node)
    assert output.with_suffix(".bin").is_file() and record["quantized_node_count"] >= convolutions > 20
    assert record["versions"]["nncf"] and 0.5 < record["agreement"]["mean"] <= 1.0
    compiled = ov.Core().compile_model(str(output), "CPU")
    prediction = compiled(demo_images(prep_dir)[0])[compiled.output(0)]
    assert prediction.shape == (1, 1, *SHAPE) and compiled.output(0).get_any_name() == "output"
