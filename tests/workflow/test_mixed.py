"""Mixed int8 in the workflow: a -mixed cell beside the plain one, each with its own model file and row; a
change of the target reruns the mixed cell only; a target that cannot be judged stops the run at start."""

from __future__ import annotations

import json
import re

import pytest

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.planning.plan import Plan

from ..helpers import (
    CELL_STAGES,
    CONFIG,
    TINY_KEY,
    cell_result,
    copy_run,
    merged,
    scenario,
    snakemake,
    write_config,
)

MIXED = scenario("mixed")  # tiny + onnxruntime/openvino int8, plain and -mixed
VARIANTS = ("onnxruntime-int8", "onnxruntime-int8-mixed")
RUN_HERE = merged(MIXED, {"matrix": {"variants": list(VARIANTS)}})  # (OpenVINO's are planned only)
MODELS = f"results/models/{TINY_KEY}/{TINY_KEY}_sim_bs1"


def test_a_mixed_cell_has_its_own_model_and_row_and_only_it_follows_the_target(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "run")
    write_config(workdir, RUN_HERE)
    snakemake(workdir, "results/matrix.json")
    plain, mixed = (json.loads((workdir / cell_result(variant)).read_text()) for variant in VARIANTS)
    assert plain["model_file"] == f"{MODELS}_int8.onnx" and mixed["model_file"] == f"{MODELS}_int8_mixed.onnx"
    search = mixed["quantization"]["mixed"]
    assert search["figures"]["pixel_agreement"] >= 0.96 > plain["quantization"]["agreement"]["mean"]
    assert 1 <= len(search["float_layers"]) <= 16 and search["evaluations"] == len(search["trials"])
    assert set(search["check_files"]).isdisjoint(mixed["quantization"]["calibration_files"])
    assert not plain["quantization"]["mixed"] and "target" not in plain["config"]["int8"]  # not the plain cell's
    rows = {row["variant"]: row for row in json.loads((workdir / "results" / "matrix.json").read_text())["rows"]}
    assert rows["onnxruntime-int8-mixed"]["float_layers"] == len(search["float_layers"])
    assert rows["onnxruntime-int8-mixed"]["float_layer_names"] == "; ".join(search["float_layers"])
    assert rows["onnxruntime-int8"]["float_layers"] is None
    assert rows["onnxruntime-int8-mixed"]["compute_images_per_s"] > 0  # what the accuracy cost in speed
    # another target: the mixed model, its cell and the table again; the plain cell stays as it is
    write_config(workdir, merged(RUN_HERE, {"int8": {"target": {"min_pixel_agreement": 0.955}}}))
    planned = snakemake(workdir, "-n", "results/matrix.json").stdout
    jobs = set(re.findall(r"^(\w+) +\d+$", planned, flags=re.MULTILINE)) - {"total"}
    cell = "deeplabv3_onnxruntime_int8_mixed"
    assert jobs == {"quantize_onnx_mixed", *(f"{stage}_{cell}" for stage in CELL_STAGES), "matrix"}, jobs


def test_the_other_mixed_cells_and_the_benchmark_are_planned_each_with_a_model_of_its_own(tiny_run, tmp_path):
    """OpenVINO's (NNCF's IR), TensorRT's and Ascend's mixed cells (no GPU or CANN here: their mixed models are
    searched here in ONNX Runtime, the engines and the .om planned), and the benchmark of the CPU ones."""
    workdir = copy_run(tiny_run, tmp_path / "run")
    trt_ascend = ["tensorrt-int8-mixed", "tensorrt-fp16-mixed", "ascend-fp16-mixed"]
    benchmark = {"variants": ["onnxruntime-int8-mixed", "openvino-int8-mixed"], "images": 1, "repeats": 1}
    write_config(
        workdir,
        merged(MIXED, {"matrix": {"variants": [*MIXED["matrix"]["variants"], *trt_ascend]}, "benchmark": benchmark}),
    )
    planned = snakemake(workdir, "-n", "-p", "results/matrix.json", "results/benchmark.md").stdout
    assert f"{MODELS}_int8_mixed_ov.xml" in planned and f"{MODELS}_int8_ov.xml" in planned
    assert "--quantizer openvino" in planned and "--target-agreement 0.96" in planned
    for variant, model in (
        ("onnxruntime-int8-mixed", "_int8_mixed.onnx"),
        ("openvino-int8-mixed", "_int8_mixed_ov.xml"),
    ):
        assert f"results/benchmark/{TINY_KEY}/{variant}.json" in planned and f"{MODELS}{model}" in planned
    keep_dtype = f"{MODELS}_fp16_mixed_keep_dtype.cfg"
    assert f"--keep-dtype {keep_dtype}" in planned  # written by the fp16 search (convert_fp16.py)
    assert f"--keep_dtype={keep_dtype}" in planned and "fp16-mixed/deeplabv3@64x128_bs1_Ascend310P3.om" in planned
    for source, engine in (("fp16_mixed.onnx", "fp16_mixed.engine"), ("int8_sym_mixed.onnx", "int8_mixed.engine")):
        assert f"{MODELS}_{source} results/models/{TINY_KEY}/{TINY_KEY}_bs1_{engine}" in planned
    assert "--symmetric-activations --float-bias" in planned


def test_a_target_that_cannot_be_judged_stops_the_run_at_start(tmp_path):
    write_config(tmp_path, merged(MIXED, {"int8": {"target": {"min_pixel_agreement": None}}}))
    run = snakemake(tmp_path, "-n", "results/matrix.json", check=False)
    assert run.returncode != 0 and not (tmp_path / "results").exists()
    needs = "error: a mixed-precision target needs int8.target.min_pixel_agreement or int8.target.max_miou_drop"
    assert needs in run.stdout
    # the other start checks, without a Snakemake each
    for change, message in (
        ({"int8": {"search": {"max_float_layers": 0}}}, "int8.search.max_float_layers must be at least 1"),
        ({"int8": {"calibration_images": 3}}, "set int8.calibration_images below 3"),  # no frame left to check
        (
            {"fp16": {"target": {"min_pixel_agreement": None}}, "matrix": {"variants": ["tensorrt-fp16-mixed"]}},
            "needs fp16.target.min_pixel_agreement or fp16.target.max_miou_drop",
        ),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            Plan.from_config(merged(CONFIG, MIXED, change))
