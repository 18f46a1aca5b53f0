"""The per-layer comparison (deeplabv3_pipeline/evaluation/layers.py, scripts/compare_layers.py): ait's
metrics on known tensors, and the table of an int8 model whose first failing layer is planted."""

import json
import os

import numpy as np
import pytest
import torch

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.layers import (
    THRESHOLDS,
    HeldTensors,
    SpilledTensors,
    StreamedComparison,
    Tensor,
    compare_tensors,
    held_side,
    parse_thresholds,
    past_thresholds,
    softmax_kl,
    tensor_metrics,
    tensor_names,
)

from ..conftest import MODEL_CONFIG, run_script
from ..conftest import SHAPE as UNIT_SHAPE
from ..helpers import TAB_RED, assert_readable_figure, pixels_of
from .conftest import PLANTED_SHAPE as SHAPE


def test_the_metrics_of_known_tensors():
    reference = np.array([3.0, 4.0, 0.0, 0.0])
    same = tensor_metrics(reference, reference.copy())
    assert same["cosine_similarity"] == 1.0 and same["relative_euclidean"] == 0.0 and same["rmse"] == 0.0
    other = tensor_metrics(reference, np.array([3.0, 4.0, 0.0, 2.0]))
    assert other["cosine_similarity"] == pytest.approx(25 / (5 * np.sqrt(29)))  # <a,b> / (|a| |b|)
    assert other["max_abs_error"] == 2.0 and other["mean_abs_error"] == 0.5
    assert other["relative_euclidean"] == pytest.approx(2 / 5) and other["rmse"] == pytest.approx(1.0)
    assert other["kl_divergence"] is None  # only for logits
    assert tensor_metrics(np.zeros(3), np.ones(3))["cosine_similarity"] == 0.0
    logits = np.array([[[[2.0]], [[0.0]]]])  # (1, 2 classes, 1, 1)
    p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    assert softmax_kl(logits, np.zeros_like(logits), axis=1) == pytest.approx(float((p * np.log(p / 0.5)).sum()))
    assert past_thresholds(other, THRESHOLDS) == ["cosine_similarity 0.9285 < 0.99", "relative_euclidean 0.4 > 0.05"]
    assert past_thresholds(same, THRESHOLDS) == []
    overflow = {"cosine_similarity": float("nan"), "rmse": float("inf")}  # an fp16 copy that overflowed
    assert past_thresholds(overflow, THRESHOLDS) == ["cosine_similarity nan", "rmse inf"]


def compare(reference, model, inputs, output, shape=SHAPE):
    completed = run_script(
        "compare_layers.py", "--reference", reference, "--model", model, "--input", *inputs,
        "--input-shape", *shape, "--output", output,
    )  # fmt: skip
    return completed, json.loads(output.with_suffix(".json").read_text())


def test_the_int8_model_parts_at_the_planted_layer_and_nowhere_before(planted, tmp_path):
    fp32, int8, bins = planted
    completed, record = compare(fp32, int8, bins[2:], tmp_path / "layers")  # a frame calibration did not see
    rows = record["rows"]
    # each layer's activation: ONNX Runtime's quantizer fuses Conv+Relu, whose output keeps the Relu's name
    activations = [row for row in rows if row["op_type"] in ("Conv", "Relu")]
    assert [row["op_type"] for row in activations] == ["Relu", "Relu", "Relu", "Conv"]
    first = record["first_past"]
    assert first["tensor"] == activations[2]["tensor"] and record["origin"] == "starts here"
    before = rows[: first["index"]]  # nothing before it is near a threshold, let alone past one
    assert before and all(row["cosine_similarity"] > 0.999 and row["relative_euclidean"] < 0.05 / 2 for row in before)
    assert activations[1]["cosine_similarity"] > 0.9999  # the outlier tensor itself is computed well
    assert activations[2]["cosine_similarity"] < 0.9
    assert record["logits"] and rows[-1]["kl_divergence"] is not None  # the upsampled logits: KL applies
    assert f"the first past the thresholds is #{first['index']} {first['tensor']} (Relu: " in completed.stdout
    header, *lines = (tmp_path / "layers.csv").read_text().splitlines()
    assert header.startswith("index,tensor,op_type,cosine_similarity,") and len(lines) == len(rows)
    figure = assert_readable_figure(tmp_path / "layers.png")
    assert pixels_of(figure, TAB_RED) > 200  # the first tensor past, marked


def test_two_fp32_models_of_one_network_have_no_row_past_the_thresholds(onnx_models, prep_dir, tmp_path):
    exported, simplified = onnx_models  # R18-D8 before and after onnxsim: the same computation
    first_bin = sorted(prep_dir.glob("*.bin"))[:1]
    completed, record = compare(exported, simplified, first_bin, tmp_path / "layers", UNIT_SHAPE)
    assert len(record["rows"]) > 20 and record["first_past"] is None and record["origin"] is None
    assert all(row["cosine_similarity"] > 0.9999 for row in record["rows"])
    assert "none past the thresholds" in completed.stdout
    figure = assert_readable_figure(tmp_path / "layers.png")
    assert pixels_of(figure, TAB_RED) == 0  # nothing marked


def test_models_that_share_no_tensor_are_refused(planted, tmp_path):
    fp32, _, bins = planted
    renamed = tmp_path / "renamed.onnx"  # the same layers under other module names: other tensor names
    layers = torch.nn.Sequential(torch.nn.Conv2d(3, 19, 1), torch.nn.Upsample(size=SHAPE, mode="bilinear"))
    torch.onnx.export(layers.eval(), torch.zeros(1, 3, *SHAPE), str(renamed), input_names=["input"], dynamo=False)
    failed = run_script(
        "compare_layers.py", "--reference", fp32, "--model", renamed, "--input", bins[0],
        "--input-shape", *SHAPE, "--output", tmp_path / "layers", check=False,
    )  # fmt: skip
    assert failed.returncode == 2 and "share no tensor name" in failed.stderr


def test_openvino_int8_parts_at_the_planted_layer_too(planted, planted_openvino, tmp_path, monkeypatch):
    from deeplabv3_pipeline.backends.openvino import tensors

    monkeypatch.setattr(tensors, "GROUP_BYTES", 1)  # every tensor from a compiled copy of its own
    fp32, _, bins = planted
    completed = run_script(
        "compare_layers.py", "--reference", fp32, "--model", planted_openvino, "--backend", "openvino",
        "--precision", "int8", "--input", bins[2], "--input-shape", *SHAPE, "--output", tmp_path / "layers",
    )  # fmt: skip
    record = json.loads((tmp_path / "layers.json").read_text())
    rows, first = record["rows"], record["first_past"]
    names = {row["tensor"]: row for row in rows}  # the IR's tensors carry the ONNX names
    relus = [row for row in rows if row["op_type"] == "Relu"]
    assert len(relus) == 3 and all(row["tensor"] in names for row in relus)
    # OpenVINO keeps the third convolution's output apart from its ReLU: the error starts at that Conv
    assert first["tensor"] == "/conv3/Conv_output_0" and record["origin"] == "starts here"
    assert all(row["cosine_similarity"] > 0.999 for row in rows[: first["index"]])
    assert relus[1]["index"] < first["index"] and relus[2]["past"]  # the outlier tensor itself is fine
    assert record["model"] == {
        "model": str(planted_openvino),
        "backend": "openvino",
        "precision": "int8",
        "dump": record["model"]["dump"],
    }
    assert "OpenVINO" in record["model"]["dump"] and "first past the thresholds" in completed.stdout


def test_openvino_parts_give_the_values_of_one_part_with_every_output(planted, planted_openvino, monkeypatch):
    """Each part compiled with only the ops its outputs need (a part per tensor) hands on the values of one
    part that computes them all."""
    from deeplabv3_pipeline.backends.openvino import tensors

    fp32, _, bins = planted
    image = np.fromfile(bins[2], dtype=np.float32).reshape(1, 3, *SHAPE)
    dumped = {}
    for budget in (1, 1 << 40):
        monkeypatch.setattr(tensors, "GROUP_BYTES", budget)
        dump = tensors.OpenVinoTensors(planted_openvino, "int8", 2, tensor_names(fp32))
        held = HeldTensors()
        dump.dump(image, held.put)
        dumped[budget] = (len(dump.groups), held)
    (parts, each), (one, whole) = dumped[1], dumped[1 << 40]
    assert one == 1 and parts == len(each) - 1 > 5  # (the input is handed on as it is)
    assert each.keys() == whole.keys() and all(np.array_equal(each[name], whole[name]) for name in each)


def test_pytorch_tensors_follow_the_export_names_and_find_a_changed_convolution(
    checkpoint, onnx_models, prep_dir, tmp_path
):
    """The PyTorch reference's tensors (forward hooks) against the ONNX model: the same network agrees
    everywhere, and with one convolution's weights changed in the ONNX copy the first tensor past the
    thresholds is that convolution's (BatchNorm folded into it), and nothing before it."""
    import onnx
    from onnx import numpy_helper

    _, simplified = onnx_models
    first_bin = sorted(prep_dir.glob("*.bin"))[:1]
    pytorch_args = ["--reference", checkpoint, "--reference-backend", "pytorch", "--graph", simplified]
    pytorch_args += ["--model-config", MODEL_CONFIG, "--input", *first_bin, "--input-shape", *UNIT_SHAPE]
    run_script("compare_layers.py", *pytorch_args, "--model", simplified, "--output", tmp_path / "same")
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["first_past"] is None and len(same["rows"]) > 40
    assert same["reference"]["backend"] == "pytorch" and "hooks" in same["reference"]["dump"]
    assert same["held"] == {"side": "model", "in": "memory"}  # ONNX Runtime's kept, PyTorch's streamed
    assert all(row["cosine_similarity"] > 0.9999 for row in same["rows"])

    model = onnx.load(str(simplified))
    target = "/backbone/layer3/layer3.0/conv2/Conv"
    node = next(node for node in model.graph.node if node.name == target)
    weights = next(init for init in model.graph.initializer if init.name == node.input[1])
    changed = numpy_helper.to_array(weights).copy()
    changed[0] *= -1.0  # one output channel's filter negated
    weights.CopyFrom(numpy_helper.from_array(changed, weights.name))
    planted_onnx = tmp_path / "changed.onnx"
    onnx.save(model, str(planted_onnx))
    run_script("compare_layers.py", *pytorch_args, "--model", planted_onnx, "--output", tmp_path / "changed")
    record = json.loads((tmp_path / "changed.json").read_text())
    first = record["first_past"]
    assert first["tensor"] == node.output[0] and record["origin"] == "starts here"
    assert all(row["cosine_similarity"] > 0.9999 for row in record["rows"][: first["index"]])


def test_tensorrt_and_ascend_comparisons_are_planned_with_their_own_tools(onnx_models, prep_dir, tmp_path):
    _, simplified = onnx_models
    bins = sorted(prep_dir.glob("*.bin"))[:2]
    common = ["--graph", simplified, "--source", simplified, "--input", *bins, "--input-shape", *UNIT_SHAPE]
    planned = {}
    for backend, precision, model in (("tensorrt", "int8", "deeplabv3.engine"), ("ascend", "fp16", "deeplabv3.om")):
        output = tmp_path / backend / "layers"
        completed = run_script(
            "compare_layers.py", "--reference", simplified, "--model", tmp_path / model, "--backend", backend,
            "--precision", precision, *common, "--output", output,
        )  # fmt: skip
        planned[backend] = json.loads(output.with_suffix(".json").read_text())
        assert planned[backend]["status"].startswith("planned: not run here")
        assert "rows" not in planned[backend] and not output.with_suffix(".csv").exists()
        assert "planned, not run here" in completed.stdout
    first, second = planned["tensorrt"]["commands"]
    assert f"polygraphy run {simplified} --onnxrt --onnx-outputs mark all" in first
    assert f"polygraphy run {simplified} --trt --int8 --trt-outputs mark all" in second
    assert "--load-outputs" in second and "polygraphy_inputs.py:load_data" in second
    msit = [command for command in planned["ascend"]["commands"] if command.startswith("msit")]
    assert len(msit) == len(bins)  # one per image
    assert msit[0].startswith(f"msit debug compare -gm {simplified} -om {tmp_path / 'deeplabv3.om'} -i {bins[0]}")
    assert f"-is input:1,3,{UNIT_SHAPE[0]},{UNIT_SHAPE[1]}" in msit[0] and "--locat True" in msit[0]


def test_polygraphys_data_loader_feeds_the_bins(prep_dir, monkeypatch):
    from deeplabv3_pipeline.backends.tensorrt import polygraphy_inputs

    bins = sorted(prep_dir.glob("*.bin"))[:2]
    monkeypatch.setenv(polygraphy_inputs.INPUTS, os.pathsep.join(map(str, bins)))
    monkeypatch.setenv(polygraphy_inputs.SHAPE, f"{UNIT_SHAPE[0]},{UNIT_SHAPE[1]}")
    feeds = list(polygraphy_inputs.load_data())
    assert len(feeds) == 2 and list(feeds[0]) == ["input"]
    assert np.array_equal(feeds[1]["input"].ravel(), np.fromfile(bins[1], dtype=np.float32))
    assert feeds[0]["input"].shape == (1, 3, *UNIT_SHAPE)


def test_thresholds_are_configurable_and_a_wrong_one_is_named():
    assert parse_thresholds(["rmse=0.5"])["rmse"] == ("above", 0.5)
    with pytest.raises(UserError, match="no metric 'cosine' has one: choose from cosine_similarity"):
        parse_thresholds(["cosine=0.9"])
    with pytest.raises(UserError, match=r"not a number \(e.g. rmse=1\)"):
        parse_thresholds(["rmse=big"])


def test_spilled_tensors_keep_the_later_value_of_a_name_and_read_back_from_disk(tmp_path):
    store = SpilledTensors(tmp_path / "side")
    store.put("conv", np.ones((2, 3), np.float32))
    store.put("relu", np.zeros(4, np.float32))
    assert np.array_equal(store["conv"], np.ones((2, 3)))
    store.put("conv", np.full((2, 3), 7.0, np.float32))  # a folded norm's value replaces its Conv's
    assert list(store) == ["conv", "relu"] and len(store) == 2
    assert np.array_equal(store["conv"], np.full((2, 3), 7.0)) and store["conv"].dtype == np.float32
    assert sorted(path.name for path in (tmp_path / "side").iterdir()) == ["0.npy", "1.npy"]
    wide = np.arange(24, dtype=np.float64).reshape(2, 3, 4)  # another dtype and shape through the same buffer
    store.put("wide", wide)
    assert np.array_equal(store["wide"], wide) and store["wide"].dtype == np.float64
    store.clear()
    assert len(store) == 0 and not list((tmp_path / "side").iterdir())


def test_the_metrics_equal_float64_over_the_whole_arrays(monkeypatch):
    """tensor_metrics sums in float64 without a float64 copy of the tensors: the same figures as float64
    arrays give (to 1e-9: the difference is taken in float32, exact where the values are within a factor
    of 2, rounded once elsewhere), and a NaN (an overflow) is kept."""
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2, 3, 50, 70)).astype(np.float32)
    other = reference + rng.standard_normal(reference.shape).astype(np.float32) * 0.01
    from deeplabv3_pipeline.evaluation import layers

    whole = tensor_metrics(reference, other)  # one chunk
    monkeypatch.setattr(layers, "CHUNK", 1000)  # 21 chunks, the last one short
    metrics = tensor_metrics(reference, other)
    ref, oth = reference.astype(np.float64).ravel(), other.astype(np.float64).ravel()
    expected = {
        "cosine_similarity": ref @ oth / (np.linalg.norm(ref) * np.linalg.norm(oth)),
        "max_abs_error": np.abs(oth - ref).max(),
        "mean_abs_error": np.abs(oth - ref).mean(),
        "relative_euclidean": np.linalg.norm(oth - ref) / np.linalg.norm(ref),
        "rmse": np.sqrt(np.mean((oth - ref) ** 2)),
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-9) and whole[name] == pytest.approx(value, rel=1e-9)
    other.ravel()[10] = np.nan  # in the first chunk: a later chunk's max does not drop it
    nan = tensor_metrics(reference, other)
    assert np.isnan(nan["max_abs_error"]) and np.isnan(nan["rmse"]) and np.isnan(nan["cosine_similarity"])


def test_onnxruntime_groups_of_outputs_give_the_values_of_one_session_with_every_output(planted, monkeypatch):
    """Each group of outputs a session of its own (ONNX Runtime keeps a run's declared outputs alive to its
    end): a session per tensor hands on the values one session with every output does."""
    from deeplabv3_pipeline.backends.onnxruntime import tensors

    fp32, int8, bins = planted
    image = np.fromfile(bins[2], dtype=np.float32).reshape(1, 3, *SHAPE)
    dumped = {}
    for budget in (1, 1 << 40):
        monkeypatch.setattr(tensors, "GROUP_BYTES", budget)
        dump = tensors.OnnxTensors(int8, tensor_names(fp32))
        held = HeldTensors()
        dump.dump(image, held.put)
        dumped[budget] = (len(dump.groups), held)
    (parts, each), (one, whole) = dumped[1], dumped[1 << 40]
    assert one == 1 and parts == len(each) - 1 >= 5  # (the input is handed on as it is)
    assert each.keys() == whole.keys() and all(np.array_equal(each[name], whole[name]) for name in each)


def test_openvino_outputs_are_grouped_in_order_within_the_budget():
    from deeplabv3_pipeline.evaluation.layers import output_groups

    assert output_groups([1, 2, 3, 4, 10, 1], 5) == [[0, 1], [2], [3], [4], [5]]
    assert output_groups([2, 2, 1], 5) == [[0, 1, 2]] and output_groups([], 5) == []


def test_either_side_may_be_kept_while_the_other_streams_and_the_rows_are_the_same():
    """The reference kept and the model streamed, or the model kept and the reference streamed: the same
    rows (each metric of the model against the reference, not the other way round)."""
    rng = np.random.default_rng(0)
    order = [Tensor("conv", "Conv", ("input",)), Tensor("relu", "Relu", ("conv",))]
    reference = {tensor.name: rng.normal(size=(1, 4, 6, 5)).astype(np.float32) for tensor in order}
    model = {name: value * 1.5 + np.float32(0.1) for name, value in reference.items()}
    expected = compare_tensors(order, reference, model)
    held = HeldTensors()
    for name, value in model.items():
        held.put(name, value)
    streamed = StreamedComparison(order, held, held_is_reference=False)
    for name, value in reference.items():
        streamed.put(name, value)
    assert streamed.rows() == expected
    swapped = compare_tensors(order, model, reference)  # (the roles matter: relative to the reference)
    assert swapped[0]["relative_euclidean"] != pytest.approx(expected[0]["relative_euclidean"])


def test_the_side_that_computes_every_tensor_first_is_kept_in_memory_where_the_other_streams():
    assert held_side(reference_streams=True, model_streams=False) == ("model", "memory")
    assert held_side(reference_streams=False, model_streams=True) == ("reference", "memory")
    assert held_side(reference_streams=False, model_streams=False) == ("reference", "disk")
    assert held_side(reference_streams=True, model_streams=True) == ("reference", "disk")


def test_held_tensors_copy_a_runtimes_buffer_unless_the_dump_hands_on_arrays_of_their_own():
    buffer = np.zeros(8, np.float32)
    copied = HeldTensors()
    copied.put("view", buffer[2:6])
    buffer[:] = 7.0  # the runtime writes its next tensor there
    assert np.array_equal(copied["view"], np.zeros(4))
    owned = np.ones(3, np.float32)
    kept = HeldTensors(copy=False)
    kept.put("owned", owned)
    assert kept["owned"] is owned
