"""Keys and stamps: what a file's path adds for the settings it depends on (planning/keys.py), and what a
figure or table says it was made for, checked by `snakemake --report` (report/stamp.py)."""

from __future__ import annotations

import json

import yaml

from deeplabv3_pipeline.planning.keys import data_tag, given_name, model_tag
from deeplabv3_pipeline.planning.plan import Cell, Plan, rule_name
from deeplabv3_pipeline.report.headline import cell_line
from deeplabv3_pipeline.report.stamp import Stamp, combined, config_digest, result_stamp, stamp_problem

from ..conftest import REPO
from ..helpers import merged

DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_defaults_keep_the_guides_names_and_every_other_graph_setting_keys_the_model():
    assert data_tag({"input_shape": None}) == "" and model_tag(DEFAULTS["model"]) == ""
    assert data_tag({"input_shape": [1024, 2048]}) == ""  # the same images as the default
    assert model_tag({"input_shape": [1024, 2048]}) == "@1024x2048"  # but the graph runs at exactly this size
    assert data_tag({"input_shape": [64, 128]}) == "@64x128"
    slide = {"input_shape": [64, 128], "test_mode": "slide", "crop_size": [48, 48], "stride": [32, 32], "opset": 11}
    assert model_tag(slide) == "@64x128-slide-crop48x48-stride32x32"
    assert model_tag({"test_shape": [512, 1024], "opset": 13}) == "@test512x1024-opset13"
    assert given_name("deeplabv3@64x128-slide") == "deeplabv3" and given_name("pspnet") == "pspnet"


def test_a_non_default_size_gets_its_own_frames_models_cells_and_report_but_the_same_rule_names():
    small = Plan.from_config(
        merged(
            DEFAULTS,
            {
                "model": {"input_shape": [64, 128]},
                "matrix": {
                    "models": [
                        {"name": "pspnet", "config": "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024", "checkpoint": ""}
                    ]
                },
            },
        )
    )
    default = Plan.from_config(DEFAULTS)
    frame = small.frames[0]
    assert small.data == "demo/val@64x128" and default.data == "demo/val"
    assert small.image(frame).startswith("results/demo/cityscapes@64x128/leftImg8bit/val/")
    assert small.prep_bin(frame) == f"results/prep_dataset/demo/val@64x128/{frame.stem}.bin"
    assert [model.name for model in small.models] == ["deeplabv3@64x128", "pspnet@64x128"]
    assert small.sim_model("deeplabv3@64x128") == "results/models/deeplabv3@64x128/deeplabv3@64x128_sim_bs1.onnx"
    assert small.result(small.cell) == "results/cells/demo/val@64x128/deeplabv3@64x128/onnxruntime-fp32/result.json"
    assert small.report_folder(small.cell) == "results/report/demo/val@64x128/deeplabv3@64x128/onnxruntime-fp32"
    assert default.report_folder(default.cell) == "results/report/demo/val/deeplabv3/onnxruntime-fp32"
    # no path of one plan is a path of the other: switching between them overwrites nothing
    paths = lambda plan: {plan.prep_bin(frame), plan.result(plan.cell), plan.sim_model(plan.cell.model)}  # noqa: E731
    assert not paths(small) & paths(default)
    assert rule_name("infer", small.cell) == rule_name("infer", default.cell) == "infer_deeplabv3_onnxruntime_fp32"
    steps = [step.benchmark for step in small.run_steps()]
    assert "results/benchmarks/preprocess/demo/val@64x128/shard0.tsv" in steps


def result_of(plan: Plan, cell: Cell) -> dict:
    """What evaluate.py records of a cell, as far as the stamp reads it."""
    config = json.loads(json.dumps(plan.run_config(cell), sort_keys=True))
    dataset = {"id": plan.dataset, "split": plan.split}
    return {"model": cell.model, "variant": cell.variant.name, "config": config, "dataset": dataset}


def test_a_results_stamp_is_what_the_workflow_expects_of_its_cell_and_changes_with_its_config(tmp_path):
    plan = Plan.from_config(merged(DEFAULTS, {"model": {"input_shape": [64, 128]}}))
    stamp = result_stamp(result_of(plan, plan.cell))
    expected = Stamp(("deeplabv3@64x128/onnxruntime-fp32",), "demo/val@64x128", "64x128", stamp.config)
    assert stamp == expected and stamp.config == config_digest(plan.run_config(plan.cell))
    assert (
        stamp.text()
        == f"made for deeplabv3@64x128/onnxruntime-fp32 on demo/val@64x128 at 64x128, config {stamp.config}"
    )
    other = Plan.from_config(merged(DEFAULTS, {"model": {"input_shape": [64, 128]}, "warmup": 2}))
    assert result_stamp(result_of(other, other.cell)).config != stamp.config
    assert result_stamp({"mIoU": 1.0}) is None  # evaluate.py by hand records no workflow config
    # the default size: no tag, Cityscapes' size
    default = Plan.from_config(DEFAULTS)
    assert result_stamp(result_of(default, default.cell)).data == "demo/val"
    assert result_stamp(result_of(default, default.cell)).input_size == "1024x2048"

    # what --report checks: the same stamp passes; another's, none or a missing file name the command
    path = tmp_path / "stamp.json"
    assert "is missing" in stamp_problem(path, stamp, "snakemake --cores all results/result.json")
    path.write_text(json.dumps(stamp.to_json()))
    assert stamp_problem(path, stamp, "x") is None
    other_stamp = result_stamp(result_of(other, other.cell))
    problem = stamp_problem(path, other_stamp, "snakemake --cores all results/result.json")
    assert problem.startswith(f"{path} was made for another config ({stamp.text()}); this config's part is ")
    assert "run `snakemake --cores all results/result.json` first" in problem and "\n" not in problem
    path.write_text("{}")
    assert "records no stamp" in stamp_problem(path, stamp, "x")


def test_the_matrix_stamp_names_every_cell_in_order_and_a_matrix_json_carries_it(tmp_path):
    plan = Plan.from_config(merged(DEFAULTS, {"model": {"input_shape": [64, 128]}}))
    stamps = [result_stamp(result_of(plan, cell)) for cell in plan.matrix_cells]
    matrix = combined(stamps)
    assert matrix.cells == tuple(cell.name for cell in plan.matrix_cells) and len(matrix.cells) == 3
    assert combined(stamps[::-1]) != matrix  # another order is another table
    assert matrix.text().startswith("made for " + ", ".join(matrix.cells) + " on demo/val@64x128 at 64x128")
    assert combined(stamps * 2).text().startswith("made for 6 cells (deeplabv3@64x128/pytorch-fp32, ...) on ")
    (tmp_path / "matrix.json").write_text(json.dumps({"rows": [], "stamp": matrix.to_json()}))
    assert stamp_problem(tmp_path / "matrix.json", matrix, "x") is None


def test_a_cells_closing_line_is_one_line_with_its_speed():
    result = {"model": "m@64x128", "variant": "onnxruntime-fp32", "num_images": 3, "mIoU": 1.5, "aAcc": 2.25}
    assert cell_line(result) == "m@64x128/onnxruntime-fp32 (3 images): mIoU 1.5  aAcc 2.25"
    result["throughput"] = {"compute_images_per_s": 2.34567}
    assert cell_line(result).endswith("  2.346 images/s compute only")
