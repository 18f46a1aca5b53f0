"""Mixed precision (deeplabv3_pipeline/optimize/mixed.py, backends/onnxruntime/mixed.py, NNCF's accuracy
control in backends/openvino/quantize.py): the search on known answers, and the planted model whose plain
int8 misses the target and whose mixed model meets it by keeping the planted layer in float."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.optimize.mixed import (
    Bounds,
    CheckFrames,
    Figures,
    Target,
    layer_sensitivity,
    rank_layers,
    search_float_layers,
)

from ..conftest import run_script
from .conftest import PLANTED_SHAPE

LAYERS = tuple("abcdefgh")


def evaluator(needed: set[str], calls: list):
    """A model that meets a 0.99 target exactly when every layer of ``needed`` is in float: each of them in
    float adds to the agreement, any other adds nothing."""

    def evaluate(layers: tuple[str, ...]) -> Figures:
        calls.append(layers)
        return Figures(pixel_agreement=0.9 + 0.1 * len(needed & set(layers)) / max(len(needed), 1))

    return evaluate


def test_the_search_keeps_exactly_the_layers_needed_even_where_the_ranking_is_wrong():
    calls: list = []
    # the ranking puts one needed layer first and the other sixth: a prefix of 6 meets the target,
    # then dropping each unneeded one (the least sensitive first) leaves exactly the two
    ranked = ["d", "a", "b", "c", "e", "g", "f", "h"]
    result = search_float_layers(ranked, evaluator({"d", "g"}, calls), Target(0.99), Bounds(24, 8))
    assert set(result.float_layers) == {"d", "g"} and result.figures.pixel_agreement == 1.0
    assert len(calls) == len(set(calls)) == len(result.trials)  # every set evaluated once
    assert calls[:5] == [(), ("d",), ("d", "a"), ("d", "a", "b", "c"), ("d", "a", "b", "c", "e", "g", "f", "h")]
    again = search_float_layers(ranked, evaluator({"d", "g"}, []), Target(0.99), Bounds(24, 8))

    def trials(search):
        return [(trial.float_layers, trial.figures, trial.met) for trial in search.trials]

    assert again.float_layers == result.float_layers and trials(again) == trials(result)  # reproducible


def test_a_plain_model_that_meets_the_target_keeps_nothing_in_float():
    calls: list = []
    result = search_float_layers(LAYERS, evaluator(set(), calls), Target(0.9), Bounds())
    assert result.float_layers == () and calls == [()] and "no layer kept in float" in result.notes[0]


def test_the_bounds_stop_the_search_naming_the_best_reached():
    with pytest.raises(
        UserError,
        match=r"needs more than 2 layers in float \(int8.search.max_float_layers; every "
        r"layer in float meets it\); the best reached: pixel agreement 95.0000% with 1 layer in float \(a\)",
    ):
        search_float_layers(LAYERS, evaluator({"a", "h"}, []), Target(0.99), Bounds(24, 2))
    with pytest.raises(UserError, match=r"not met within 3 evaluations \(int8.search.max_evaluations\); the best"):
        search_float_layers(list("hgfedcba"), evaluator({"a"}, []), Target(0.99), Bounds(3, 8))
    # a bound reached once the target was met: the best found is kept, and the record says so
    result = search_float_layers(list("abcdefgh"), evaluator({"a", "b", "c"}, []), Target(0.99), Bounds(4, 8))
    assert set(result.float_layers) >= {"a", "b", "c"} and "stopped at 4 evaluations" in result.notes[0]


def test_a_target_missed_with_every_layer_in_float_blames_the_reference():
    def broken(layers):
        return Figures(pixel_agreement=0.5)

    with pytest.raises(UserError, match=r"not met even with every layer in float .*broken reference"):
        search_float_layers(LAYERS, broken, Target(0.99), Bounds(24, 4))


def test_targets_that_cannot_be_judged_name_the_key_to_set():
    keys = {"min_pixel_agreement": "int8.target.min_pixel_agreement", "max_miou_drop": "int8.target.max_miou_drop"}
    with pytest.raises(UserError, match=r"needs int8\.target\.min_pixel_agreement or int8\.target\.max_miou_drop"):
        Target(None, None).check(keys, labelled=True)
    with pytest.raises(
        UserError,
        match=r"int8\.target\.max_miou_drop needs labelled check frames.*give "
        r"int8\.target\.min_pixel_agreement",
    ):
        Target(None, 1.0).check(keys, labelled=False)
    with pytest.raises(UserError, match="max_evaluations must be at least 1"):
        Bounds(0, 4).check({"max_evaluations": "max_evaluations", "max_float_layers": "f"})
    # NNCF's max_drop is the fp32 model's margin: within it exactly when the target is met
    target = Target(0.99, 0.5)
    for figures in (Figures(0.995, 0.4), Figures(0.985, 0.4), Figures(0.995, 0.6), Figures(0.99, 0.5)):
        drop = target.reference_margin() - target.margin(figures)
        assert (drop <= target.reference_margin() + 1e-12) == target.met(figures)


def test_layers_rank_by_the_error_each_adds_following_a_fused_activation():
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
            onnx.helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
            onnx.helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
            onnx.helper.make_node("Add", ["c2", "r1"], ["y"], name="add"),
        ],
        "g", [], [],
    )  # fmt: skip
    rows = [  # conv1's own output has no row (fused): its Relu's is read; conv2 adds 0.3, the add nothing
        {"tensor": "x", "relative_euclidean": 0.0},
        {"tensor": "r1", "relative_euclidean": 0.01},
        {"tensor": "c2", "relative_euclidean": 0.31},
        {"tensor": "y", "relative_euclidean": 0.2},
    ]
    scores = layer_sensitivity(graph, rows, ["conv1", "conv2", "add"])
    assert scores == pytest.approx({"conv1": 0.01, "conv2": 0.3, "add": -0.11})
    assert rank_layers(scores, ["conv1", "conv2", "add"]) == ["conv2", "conv1", "add"]


def quantize(fp32, output, bins, *flags, check=True):
    return run_script(
        "quantize_onnx.py", fp32, output, "--calibration-data", *bins[:2], "--check-data", bins[2],
        "--calibration-images", 2, *flags, check=check,
    )  # fmt: skip


def test_onnxruntime_mixed_int8_keeps_the_planted_layer_in_float_and_meets_the_target(planted, tmp_path):
    fp32, plain, bins = planted
    assert json.loads(plain.with_suffix(".json").read_text())["agreement"]["mean"] < 0.95  # the plain one misses
    mixed = tmp_path / "planted_int8_mixed.onnx"
    quantize(fp32, mixed, bins, "--target-agreement", 0.99)
    record = json.loads(mixed.with_suffix(".json").read_text())["mixed"]
    # the planted layer (the convolution reading the crushed channels), and at most two others
    assert "/conv3/Conv" in record["float_layers"] and len(record["float_layers"]) <= 3
    assert record["figures"]["pixel_agreement"] >= 0.99 and record["evaluations"] == len(record["trials"]) >= 2
    assert record["target"] == {"min_pixel_agreement": 0.99, "max_miou_drop": None} and record["seconds"] > 0
    assert record["check_files"] == [str(bins[2])]  # not a calibration frame
    # the model written is the one judged: run again, it agrees as recorded; the rest stays int8
    image = np.fromfile(bins[2], np.float32).reshape(1, 3, *PLANTED_SHAPE)
    outputs = [ort.InferenceSession(str(path)).run(None, {"input": image})[0] for path in (fp32, mixed)]
    assert np.mean(outputs[0] == outputs[1]) == record["figures"]["pixel_agreement"]
    nodes = onnx.load(str(mixed)).graph.node
    assert sum(node.op_type == "QuantizeLinear" for node in nodes) >= 2  # conv1 and conv2 still quantized


def test_a_float_layer_reads_the_fp32_tensors_and_every_node_in_float_is_the_fp32_model(planted, tmp_path, monkeypatch):
    """A layer in float reads float tensors: where ONNX Runtime removed the Relu whose clamp its uint8 range
    applies, the Relu is put back for it; without that, conv3 in float reads conv2's unclamped output and
    agrees less than the plain int8 model. Every quantized node in float is the fp32 model, exactly."""
    from deeplabv3_pipeline.backends.onnxruntime import mixed
    from deeplabv3_pipeline.backends.onnxruntime.mixed import quantized_nodes
    from deeplabv3_pipeline.backends.onnxruntime.quantize import prepare, quantize_prepared
    from deeplabv3_pipeline.optimize.quantize import QuantizeSettings

    fp32, _, bins = planted
    settings = QuantizeSettings()
    prepared = prepare(fp32, bins[:2], "input", PLANTED_SHAPE, settings, tmp_path)
    images = [np.fromfile(path, np.float32).reshape(1, 3, *PLANTED_SHAPE) for path in bins]

    def agreement(model):
        ours, theirs = ort.InferenceSession(str(fp32)), ort.InferenceSession(str(model))
        return np.mean([np.mean(ours.run(None, {"input": x})[0] == theirs.run(None, {"input": x})[0]) for x in images])

    plain, conv3, every = tmp_path / "plain.onnx", tmp_path / "conv3.onnx", tmp_path / "every.onnx"
    quantize_prepared(prepared, plain, settings)
    nodes = quantized_nodes(onnx.load(str(plain)).graph, prepared.float_nodes)
    assert nodes == ["/conv1/Conv", "/conv2/Conv", "/conv3/Conv"]
    quantize_prepared(prepared, conv3, settings, ["/conv3/Conv"])
    graph = onnx.load(str(conv3)).graph
    reader = next(node for node in graph.node if node.name == "/conv3/Conv")
    producer = next(node for node in graph.node if reader.input[0] in node.output)
    assert producer.op_type == "Relu" and producer.name == "/Relu_1_float"  # put back: ORT had removed it
    assert agreement(conv3) > 0.99 > agreement(plain)
    monkeypatch.setattr(mixed, "REMOVABLE_ACTIVATIONS", ())
    quantize_prepared(prepared, conv3, settings, ["/conv3/Conv"])
    assert agreement(conv3) < agreement(plain)  # the fault the Relu's copy mends
    monkeypatch.undo()
    assert quantize_prepared(prepared, every, settings, nodes) == 0  # no QuantizeLinear left
    assert agreement(every) == 1.0


def test_openvino_mixed_int8_is_nncfs_accuracy_control_and_keeps_the_planted_layer(planted, tmp_path):
    fp32, _, bins = planted
    ir = tmp_path / "planted_int8_mixed.xml"
    quantize(fp32, ir, bins, "--quantizer", "openvino", "--target-agreement", 0.99)
    record = json.loads(ir.with_suffix(".json").read_text())
    mixed = record["mixed"]
    assert "/conv3/Conv" in mixed["float_layers"] and len(mixed["float_layers"]) <= 3
    assert mixed["figures"]["pixel_agreement"] >= 0.99 and mixed["evaluations"] >= 2
    assert record["agreement"]["mean"] == mixed["figures"]["pixel_agreement"]  # the IR written is the one judged
    assert any("quantize_with_accuracy_control" in note for note in record["notes"])


def test_an_miou_target_reads_the_check_frames_labels(planted, tmp_path):
    """With labels the record holds the mIoU and its drop (mmseg's mIoU of the check frames); a generous
    drop is met by the plain model, which then keeps nothing in float."""
    import cv2

    from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
    from deeplabv3_pipeline.evaluation.metrics import confusion_matrix, summarize

    fp32, _, bins = planted
    label = np.random.default_rng(5).integers(0, 19, PLANTED_SHAPE).astype(np.uint8)
    label[0, :4] = IGNORE_INDEX
    labels = tmp_path / "labels"
    labels.mkdir()
    cv2.imwrite(str(labels / "plantedburg_000000_000002_gtFine_labelTrainIds.png"), label)
    mixed = tmp_path / "mixed.onnx"
    quantize(fp32, mixed, bins, "--target-miou-drop", 100, "--check-labels", labels)
    record = json.loads(mixed.with_suffix(".json").read_text())["mixed"]
    assert record["float_layers"] == [] and record["labelled"] and record["evaluations"] == 1
    check = CheckFrames([bins[2]], PLANTED_SHAPE, fp32, "onnxruntime")
    expected = summarize(confusion_matrix(check.reference[0][0, 0], label, NUM_CLASSES, IGNORE_INDEX), CLASS_NAMES)
    predicted = check.predict(mixed)
    ours = summarize(confusion_matrix(predicted[0][0, 0], label, NUM_CLASSES, IGNORE_INDEX), CLASS_NAMES)
    assert round(record["figures"]["miou"], 2) == ours["mIoU"]
    assert record["figures"]["miou_drop"] == pytest.approx(expected["mIoU"] - ours["mIoU"], abs=0.01)


def test_bad_mixed_input_is_one_line_naming_the_flag(planted, tmp_path):
    fp32, _, bins = planted
    output = tmp_path / "m.onnx"
    failed = quantize(fp32, output, bins, "--target-miou-drop", 1, check=False)
    assert failed.returncode == 2 and "--target-miou-drop needs labelled check frames" in failed.stderr
    assert "give --target-agreement" in failed.stderr
    failed = quantize(fp32, output, bins, "--check-labels", tmp_path, check=False)
    assert failed.returncode == 2 and "--check-labels is for a mixed-precision target" in failed.stderr
    failed = run_script(
        "quantize_onnx.py", fp32, output, "--calibration-data", *bins, "--calibration-images", 3,
        "--target-agreement", 0.99, check=False,
    )  # fmt: skip
    assert failed.returncode == 2 and "check images not used for calibration" in failed.stderr
    failed = quantize(fp32, output, bins, "--target-agreement", 1.5, check=False)
    assert failed.returncode == 2 and "--target-agreement must be a fraction in (0, 1]" in failed.stderr
    assert not output.exists()


def test_fp16_mixed_keeps_the_planted_nodes_fp32_and_writes_atcs_keep_dtype(planted, planted_fp16, tmp_path):
    """The fp16 fault planted between conv2 and conv3 (1000 + a in float16): the plain fp16 model misses the
    target; the mixed one keeps conv3, the tensor it reads (conv2 and its ReLU) fp32 and nothing else, and
    ATC's --keep_dtype file lists them."""
    fp32, (_, _, bins) = planted_fp16, planted
    output, keep_dtype = tmp_path / "fp16_mixed.onnx", tmp_path / "keep_dtype.cfg"
    run_script(
        "convert_fp16.py", fp32, output, "--check-data", bins[2], "--target-agreement", 0.99, "--keep-dtype", keep_dtype
    )
    record = json.loads(output.with_suffix(".json").read_text())
    mixed = record["mixed"]
    assert mixed["trials"][0]["float_layers"] == [] and mixed["trials"][0]["pixel_agreement"] < 0.9  # plain fp16
    assert set(mixed["float_layers"]) == {"/conv3/Conv", "/conv2/Conv", "/Relu_1"}  # the planted layer and two
    assert mixed["figures"]["pixel_agreement"] >= 0.99 and record["kept_fp32_nodes"] == mixed["float_layers"]
    assert keep_dtype.read_text().split() == mixed["float_layers"]
    # the model written keeps them fp32 (behind Casts), the rest float16
    nodes = {node.name: node for node in onnx.load(str(output)).graph.node}
    assert "/conv2/Conv_input_cast0" in nodes and "/conv1/Conv_input_cast0" not in nodes


def test_the_fp16_emulation_rounds_every_tensor_of_an_fp16_node_and_overflows_as_float16(planted_fp16):
    """ONNX Runtime on the CPU computes an fp16 model's nodes in float32 where it lacks float16 kernels and
    drops the casts between them; the emulation rounds as float16 hardware does."""
    from deeplabv3_pipeline.optimize.fp16 import fp16_emulation, fp16_layers, fp16_model

    model = onnx.load(str(planted_fp16))
    assert fp16_layers(model) == ["/conv1/Conv", "/Relu", "/conv2/Conv", "/Relu_1", "/conv3/Conv", "/classifier/Conv"]
    image = np.random.default_rng(2).standard_normal((1, 3, *PLANTED_SHAPE), dtype=np.float32)

    def run(proto):
        return ort.InferenceSession(proto.SerializeToString()).run(None, {"input": image})[0]

    reference = run(model)
    conv2_only = ["/conv2/Conv"]  # its fp32 output is still stored as float16 before conv3
    assert np.mean(run(fp16_emulation(model, conv2_only)) == reference) < 0.95
    assert np.mean(run(fp16_model(model, conv2_only)) == reference) == 1.0  # what ONNX Runtime makes of it
    assert np.array_equal(run(fp16_emulation(model, fp16_layers(model))), reference)  # all fp32: the fp32 model
    big = onnx.helper.make_graph(
        [onnx.helper.make_node("Mul", ["x", "k"], ["y"], name="mul")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        [onnx.numpy_helper.from_array(np.array([2.0, 2.0], np.float32), "k")],
    )  # fmt: skip
    emulated = fp16_emulation(onnx.helper.make_model(big, opset_imports=[onnx.helper.make_opsetid("", 13)]))
    values = ort.InferenceSession(emulated.SerializeToString()).run(None, {"x": np.array([1.0, 40000.0], np.float32)})
    assert values[0][0] == 2.0 and np.isinf(values[0][1])  # 80000 is past float16's 65504


def test_a_removed_clip_is_put_back_with_its_bounds():
    """ReLU6 as Clip(x, 0, 6): where the quantizer folded it into the range, the float layer after it reads
    Clip(x, 0, 6) of the unclamped tensor again, its bounds kept."""
    from onnx import TensorProto, helper

    from deeplabv3_pipeline.backends.onnxruntime.mixed import read_float_inputs

    def graph(nodes):
        return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        ])  # fmt: skip

    source = graph([
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"),
        helper.make_node("Clip", ["c", "low", "high"], ["r"], name="relu6"),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ])  # fmt: skip
    quantized = helper.make_model(graph([  # the Clip folded: conv1's output quantized under the Clip's name
        helper.make_node("Conv", ["x", "w"], ["r"], name="conv1"),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["r_q"], name="q"),
        helper.make_node("DequantizeLinear", ["r_q", "s", "z"], ["r_dq"], name="dq"),
        helper.make_node("Conv", ["r_dq", "w2"], ["y"], name="conv2"),
    ]))  # fmt: skip
    assert read_float_inputs(quantized, ["conv2"], source) == 1
    nodes = {node.name: node for node in quantized.graph.node}
    assert list(nodes["relu6_float"].input) == ["r", "low", "high"] and nodes["conv2"].input[0] == "r_float"
    assert "q" not in nodes and "dq" not in nodes  # the pair nothing reads is dropped
    assert [node.name for node in quantized.graph.node] == ["conv1", "relu6_float", "conv2"]
