"""The per-layer comparison (deeplabv3_pipeline/evaluation/layers.py, scripts/compare_layers.py): ait's
metrics on known tensors, and the table of an int8 model whose first failing layer is planted."""

import json

import numpy as np
import pytest
import torch

from deeplabv3_pipeline.evaluation.layers import THRESHOLDS, past_thresholds, softmax_kl, tensor_metrics

from ..conftest import SHAPE as UNIT_SHAPE
from ..conftest import run_script
from ..helpers import TAB_RED, assert_readable_figure, pixels_of

SHAPE = (16, 32)  # the planted model's


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


class Planted(torch.nn.Module):
    """Three 3x3 convolutions and a classifier, upsampled and argmaxed as the workflow's exports are. The
    second convolution's channel 0 is an outlier (a bias of 1000, the others' activations ~1): int8's
    per-tensor range of that activation then leaves the other channels a step or two of 8 bits. The third
    convolution does not read channel 0, so its output is made of the crushed channels only: the error
    starts at the third convolution, and nothing before it is past a threshold."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2, self.conv3 = (torch.nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8))
        self.classifier = torch.nn.Conv2d(8, 19, 1)
        with torch.no_grad():
            self.conv2.bias[0] = 1000.0
            self.conv3.weight[:, 0] = 0.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(image))
        features = torch.relu(self.conv2(features))
        features = torch.relu(self.conv3(features))
        logits = torch.nn.functional.interpolate(self.classifier(features), size=SHAPE, mode="bilinear")
        return logits.argmax(1, keepdim=True)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(fp32 ONNX, its int8 by quantize_onnx.py, preprocessed bins) of the planted model."""
    folder = tmp_path_factory.mktemp("planted")
    fp32, int8, bins = folder / "planted.onnx", folder / "planted_int8.onnx", folder / "bins"
    torch.onnx.export(
        Planted().eval(), torch.zeros(1, 3, *SHAPE), str(fp32), input_names=["input"], output_names=["output"],
        opset_version=11, dynamo=False,
    )  # fmt: skip
    bins.mkdir()
    for index in range(3):
        image = np.random.default_rng(index).standard_normal((1, 3, *SHAPE), dtype=np.float32)
        image.tofile(bins / f"frame_{index}_leftImg8bit.bin")
    run_script(
        "quantize_onnx.py", fp32, int8, "--calibration-data", bins, "--calibration-images", 2, "--check-images", 1
    )
    return fp32, int8, sorted(bins.glob("*.bin"))


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
