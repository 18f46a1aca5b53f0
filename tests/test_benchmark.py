"""scripts/benchmark.py on a tiny shape: it runs, and its JSON has every field (no timing is asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from deeplabv3_pipeline.cpu import has_bf16
from deeplabv3_pipeline.mmseg_model import DEFAULT_CONFIG, load_export_model

from .conftest import REPO, SHAPE, run_script

SPEC = importlib.util.spec_from_file_location("deeplabv3_benchmark", REPO / "scripts" / "benchmark.py")
benchmark = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = benchmark  # dataclasses look their module up there
SPEC.loader.exec_module(benchmark)

VARIANTS = (
    "pytorch:fp32",
    "onnxruntime:fp32",
    "openvino:fp32",
    "openvino:bf16",  # timed on a CPU with native BF16, skipped (with the reason) elsewhere
    "onnxruntime:int8",
    "openvino:int8-qdq",
    "openvino:fp32-winograd",
)
RESULT_FIELDS = {
    "variant",
    "backend",
    "precision",
    "model",
    "status",
    "load_s",
    "times_s",
    "median_s",
    "images_per_s",
    "gflops",
    "percent_of_gemm_peak",
    "peak_rss_mb",
    "speedup_vs_pytorch",
    "pixel_agreement",
    "inference_precision",
    "precision_evidence",
}
# What each variant's runtime must report: OpenVINO "fp32" is fp32 even where its default would be bf16.
COMPUTED_IN = {
    "pytorch:fp32": "fp32",
    "onnxruntime:fp32": "fp32",
    "openvino:fp32": "fp32",
    "openvino:bf16": "bf16",
    "onnxruntime:int8": "int8",
    "openvino:int8-qdq": "int8",
    "openvino:fp32-winograd": "fp32",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory, checkpoint, onnx_models, demo_root) -> dict:
    output = tmp_path_factory.mktemp("benchmark") / "benchmark.json"
    completed = run_script(
        "benchmark.py",
        "--checkpoint",
        checkpoint,
        "--onnx",
        onnx_models[1],
        "--shape",
        *SHAPE,
        "--repeats",
        1,
        "--num-images",
        1,
        "--calibration-images",
        2,
        "--pipeline-images",
        2,
        "--images",
        demo_root / "leftImg8bit" / "val",
        "--variants",
        *VARIANTS,
        "--output",
        output,
    )
    assert "| variant" in completed.stdout and "outside the model" in completed.stdout
    return {**json.loads(output.read_text()), "stdout": completed.stdout}


def test_benchmark_json_has_every_field(report):
    assert report["shape"] == list(SHAPE) and report["repeats"] == 1 and len(report["images"]) == 1
    assert report["random_checkpoint"] and "RANDOM" in report["checkpoint"]  # the fixture is make_random_checkpoint's
    assert report["machine"]["gemm_fp32_gflops"]["peak"] > 0 and report["machine"]["usable_cores"] >= 1
    assert report["flops_per_image"]["total"] > 0 and "Conv" in report["flop_counter"]
    assert [result["variant"] for result in report["results"]] == list(VARIANTS)
    for result in report["results"]:
        if result["variant"] == "openvino:bf16" and not has_bf16():
            assert result["status"] == "skipped" and "no native BF16" in result["reason"], result
            continue
        assert set(result) >= RESULT_FIELDS and result["status"] == "ok", result
        assert result["inference_precision"] == COMPUTED_IN[result["variant"]], result["precision_evidence"]
        assert result["median_s"] > 0 and result["gflops"] > 0 and result["peak_rss_mb"] > 100
        assert 0 <= result["pixel_agreement"] <= 1
    eager = report["results"][0]
    assert eager["speedup_vs_pytorch"] == pytest.approx(1.0) and eager["pixel_agreement"] == 1.0
    winograd = report["results"][-1]
    # Fewer operations than the direct graph: its own rate is below the direct-equivalent one.
    assert 0 < report["executed_flops_per_image"]["winograd"] < report["flops_per_image"]["total"]
    assert 0 < winograd["executed_gflops"] < winograd["gflops"]
    assert report["results"][1]["executed_gflops"] == report["results"][1]["gflops"]  # direct fp32: the same
    assert report["models"]["winograd"].endswith("deeplabv3_sim_bs1_winograd.onnx")
    overhead = report["pipeline_overhead"]
    assert overhead["images"] == 2 and 0 <= overhead["non_compute_fraction"] < 1
    assert overhead["compute_s"] <= overhead["end_to_end_wall_s"]


def test_flop_count_matches_torch_flop_counter(onnx_models, checkpoint):
    """The ONNX graph count (Conv 2 x MACs + small extras) against torch's own counter (matmul/conv only)."""
    model = load_export_model(DEFAULT_CONFIG, checkpoint, SHAPE)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, *SHAPE))
    counted = benchmark.count_flops(onnx_models[1])
    assert counted["by_op"]["Conv"] == pytest.approx(counter.get_total_flops(), rel=0.01)
    assert counted["total"] == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_overhead_from_summary():
    summary = {"num_images": 2, "end_to_end": {"wall_s": 4.0}, "per_image_compute_ms": {"a": 1500.0, "b": 1500.0}}
    overhead = benchmark.overhead_from_summary(summary, 6.0)
    assert overhead["compute_s"] == 3.0 and overhead["non_compute_fraction"] == pytest.approx(0.25)


def test_benchmark_without_a_model_says_what_to_give():
    result = run_script("benchmark.py", "--shape", *SHAPE, check=False)
    assert result.returncode == 2 and "--random-checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_computed_precision_is_in_the_printed_table(report):
    rows = {cells[0]: cells for cells in (benchmark_row(line) for line in report["stdout"].splitlines()) if cells}
    assert rows["variant"][1] == "computed in"
    for result in report["results"]:
        if result["status"] == "ok":
            assert rows[result["variant"]][1] == result["inference_precision"]


def benchmark_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")] if line.startswith("| ") else []


@pytest.mark.parametrize("bf16", [True, False])
def test_default_variants_include_bf16_only_on_a_bf16_cpu(bf16):
    variants = benchmark.default_variants(bf16=bf16)
    assert ("openvino:bf16" in variants) == bf16 and set(variants) <= set(benchmark.ALL_VARIANTS)
    assert variants[:3] == ["pytorch:fp32", "onnxruntime:fp32", "openvino:fp32"]


def test_bf16_variant_is_skipped_with_the_reason_without_native_bf16(monkeypatch):
    monkeypatch.setattr(benchmark, "has_bf16", lambda: False)
    args = argparse.Namespace(variants=["openvino:fp32", "openvino:bf16"])
    fp32, bf16 = benchmark.plan_variants(args, None, {"fp32": Path("model.onnx")})
    assert fp32.skipped == "" and bf16.model == "model.onnx"
    assert "no native BF16 (avx512_bf16 or amx_bf16)" in bf16.skipped


@pytest.mark.parametrize(
    ("variant", "asked"), [("fp32", "fp32"), ("bf16", "bf16"), ("int8-qdq", "int8"), ("fp32-winograd", "fp32")]
)
def test_each_variant_asks_its_backend_for_a_precision(variant, asked):
    assert benchmark.requested_precision(variant) == asked
