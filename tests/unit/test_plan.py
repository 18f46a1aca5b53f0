"""Unit tests of the plan: frames, shards and paths from a config, without Snakemake."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deeplabv3_pipeline.data.cityscapes import TRAIN_IDS_SUFFIX, dataset_id
from deeplabv3_pipeline.data.demo import demo_frames, make_demo_dataset
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.planning.plan import Cell, Plan, rule_name
from deeplabv3_pipeline.planning.variants import VARIANTS

from ..conftest import REPO
from ..helpers import merged

DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


def plan(**changes: object) -> Plan:
    return Plan.from_config(merged(DEFAULTS, changes))


def test_the_demo_plan_names_every_per_frame_file_under_demo_val():
    demo = plan(demo={"images": 3}, shards=2)
    assert demo.demo and demo.data == "demo/val" and demo.frames == tuple(demo_frames(3))
    frame = demo.frames[0]
    assert demo.image(frame) == f"results/demo/cityscapes/leftImg8bit/val/{frame.city}/{frame.frame}_leftImg8bit.png"
    assert demo.prep_bin(frame) == f"results/prep_dataset/demo/val/{frame.stem}.bin"
    openvino = Cell("deeplabv3", VARIANTS["openvino-fp32"])
    assert demo.prediction(openvino, frame) == f"results/infer/demo/val/deeplabv3/openvino-fp32/{frame.stem}_0.bin"
    assert demo.summary(demo.cell) == "results/infer/demo/val/deeplabv3/onnxruntime-fp32/summary.json"
    assert demo.shard_summary(demo.cell, 1) == "results/infer/demo/val/deeplabv3/onnxruntime-fp32/shards/1.json"
    assert demo.result(openvino) == "results/cells/demo/val/deeplabv3/openvino-fp32/result.json"
    assert demo.frames_without_train_ids == demo.frames  # the demo's labels are made by the labels rule
    assert demo.train_ids(frame) == demo.made_train_ids(frame)
    assert demo.made_train_ids(frame).startswith(f"results/labels/demo/val/{frame.city}/{frame.frame}")


@pytest.mark.parametrize(
    ("frames", "shards", "sizes"), [(3, 1, [3]), (3, 2, [2, 1]), (3, 4, [1, 1, 1]), (9, 4, [3, 2, 2, 2])]
)
def test_shards_are_balanced_contiguous_and_never_empty(frames, shards, sizes):
    planned = plan(demo={"images": frames}, shards=shards)
    parts = [planned.shard_frames(index) for index in planned.shards]
    assert [len(part) for part in parts] == sizes
    assert [frame for part in parts for frame in part] == list(planned.frames)


def test_no_shard_holds_more_than_250_frames_so_that_planning_stays_fast():
    from deeplabv3_pipeline.planning.plan import MAX_FRAMES_PER_SHARD, shard_count

    assert MAX_FRAMES_PER_SHARD == 250
    assert [shard_count(1, frames) for frames in (3, 250, 251, 500, 3000)] == [1, 1, 2, 2, 12]
    assert shard_count(8, 500) == 8 and shard_count(4, 3) == 3
    planned = plan(demo={"images": 260})
    assert planned.shards == [0, 1] and [len(planned.shard_frames(i)) for i in planned.shards] == [130, 130]
    assert sum(len(planned.frames_to_label(i)) for i in planned.shards) == 260  # labels per shard too


def test_a_real_root_gets_its_own_data_folder_and_its_own_train_ids_where_it_has_them(tmp_path):
    root = tmp_path / "cityscapes"
    make_demo_dataset(root, "val", 3, (64, 128), seed=0)
    first = demo_frames(3)[0]
    own = first.train_ids(root, "val")
    own.write_bytes(b"")  # the dataset ships this frame's trainIds: used as it is
    planned = plan(dataset={"root": str(root), "split": "val"})
    assert not planned.demo and planned.data == f"{dataset_id(root)}/val"
    assert planned.train_ids(first) == str(own) and own.name.endswith(TRAIN_IDS_SUFFIX)
    assert first not in planned.frames_without_train_ids and len(planned.frames_without_train_ids) == 2
    assert planned.prep_bin(first) == f"results/prep_dataset/{dataset_id(root)}/val/{first.stem}.bin"
    assert Path(planned.image(first)) == first.image(root, "val")


def test_a_missing_root_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=f"dataset root {tmp_path / 'nowhere'} does not exist"):
        plan(dataset={"root": str(tmp_path / "nowhere")})


PSPNET = {"name": "pspnet", "config": "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024", "checkpoint": ""}
MATRIX = {"models": [PSPNET], "variants": ["onnxruntime-fp32", "onnxruntime-int8"], "reference": "pytorch-fp32"}


def cell_files(planned: Plan, cell: Cell) -> set[str]:
    """Every file the plan names for one cell: its model, predictions, summaries and result."""
    files = {planned.model_file(cell), *planned.model_companions(cell), *planned.predictions(cell)}
    files |= {planned.shard_summary(cell, index) for index in planned.shards}
    files |= {planned.summary(cell), planned.result(cell), planned.result_text(cell)}
    return files


def test_the_configured_cell_is_model_x_backend_precision_and_the_matrix_adds_models_x_variants():
    planned = plan(backend="openvino", precision="int8", matrix=MATRIX)
    assert planned.cell == Cell("deeplabv3", VARIANTS["openvino-int8"])
    assert [cell.name for cell in planned.matrix_cells] == [
        f"{model}/{variant}"
        for model in ("deeplabv3", "pspnet")
        for variant in ("pytorch-fp32", "onnxruntime-fp32", "onnxruntime-int8")  # the reference first
    ]
    assert planned.cells[0] == planned.cell and len(planned.cells) == 7
    # winograd.enabled names the -winograd variant where the backend has one, and only there
    assert plan(backend="openvino", winograd={"enabled": True}).cell.variant.name == "openvino-fp32-winograd"
    assert plan(backend="pytorch", winograd={"enabled": True}).cell.variant.name == "pytorch-fp32"


def test_no_two_cells_share_a_file_and_each_model_has_its_own_folder():
    # (int8 calibrates on 2 of the 3 frames: its -mixed variants check on the third)
    planned = plan(
        matrix={**MATRIX, "variants": list(VARIANTS)},
        shards=2,
        int8={"calibration_images": 2},
        pytorch={"device": "cuda"},
    )
    seen: dict[str, str] = {}
    for cell in planned.cells:
        for path in cell_files(planned, cell) - {planned.model_file(cell), *planned.model_companions(cell)}:
            assert path not in seen, f"{path} of {cell.name} is also {seen[path]}'s"
            seen[path] = cell.name
    models = {cell.model: set() for cell in planned.cells}
    for cell in planned.cells:
        models[cell.model] |= {planned.model_file(cell)} if cell.backend != "pytorch" else set()
    assert all(path.startswith(f"results/models/{name}/") for name, paths in models.items() for path in paths)
    assert models["deeplabv3"].isdisjoint(models["pspnet"])
    # ATC's fp16 and fp32 .om are two files; so are TensorRT's engines
    ascend = {planned.model_file(Cell("deeplabv3", VARIANTS[f"ascend-{p}"])) for p in ("fp16", "fp32")}
    assert len(ascend) == 2
    assert "results/models/deeplabv3/fp16/deeplabv3_bs1_Ascend310P3.om" in ascend  # the guide's file name

    # a -mixed cell's model is a file of its own, never the plain cell's
    def model_files(variant):
        cell = Cell("deeplabv3", variant)
        return {planned.model_file(cell), *planned.model_companions(cell)}

    for name, variant in VARIANTS.items():
        if variant.mixed:
            assert model_files(variant).isdisjoint(model_files(VARIANTS[name.removesuffix("-mixed")])), name
    # rule names are identifiers and distinct
    names = [rule_name("infer", cell, 0) for cell in planned.cells]
    assert len(set(names)) == len(names) and all(name.isidentifier() for name in names)


def test_adding_a_variant_or_a_model_adds_only_its_cells_and_leaves_every_other_path_as_it_was():
    before = plan(matrix=MATRIX)
    more_variants = plan(matrix={**MATRIX, "variants": [*MATRIX["variants"], "openvino-int8"]})
    added = set(more_variants.cells) - set(before.cells)
    assert {cell.name for cell in added} == {"deeplabv3/openvino-int8", "pspnet/openvino-int8"}
    more_models = plan(
        matrix={
            **MATRIX,
            "models": [PSPNET, {**PSPNET, "name": "fcn", "config": "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"}],
        }
    )
    assert {cell.model for cell in set(more_models.cells) - set(before.cells)} == {"fcn"}
    for cell in before.cells:
        for other in (more_variants, more_models):
            assert cell_files(other, cell) == cell_files(before, cell)
            assert other.run_config(cell) == before.run_config(cell)  # nothing recorded changes: no rerun


def test_a_cell_records_only_the_settings_it_depends_on():
    planned = plan(matrix=MATRIX, backend="openvino")
    int8 = Cell("pspnet", VARIANTS["onnxruntime-int8"])
    recorded = planned.run_config(int8)
    assert recorded["variant"] == "onnxruntime-int8" and recorded["precision"] == "int8"
    assert recorded["model"]["name"] == "pspnet" and recorded["model"]["config"] == PSPNET["config"]
    assert "int8" in recorded and "winograd" not in recorded and "onnxruntime" in recorded
    assert not {"matrix", "backend", "openvino", "tensorrt", "benchmark"} & set(recorded)
    assert "int8" not in planned.run_config(Cell("pspnet", VARIANTS["onnxruntime-fp32"]))
    # the configured cell's backend changes nothing a matrix cell records
    assert plan(matrix=MATRIX).run_config(int8) == recorded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"matrix": {**MATRIX, "variants": ["onnxruntime-fp64"]}},
            r"matrix.variants: unknown variant 'onnxruntime-fp64': choose from ascend-fp16, ascend-fp32, ",
        ),
        (
            {"backend": "pytorch", "precision": "int8"},
            r"backend pytorch has no precision int8: .*variants pytorch-fp32, pytorch-fp16, pytorch-bf16",
        ),
        (
            {"matrix": {**MATRIX, "models": [{**PSPNET, "name": "deeplabv3"}]}},
            r"matrix.models\[0\]: a second model named 'deeplabv3'",
        ),
        (
            {"matrix": {**MATRIX, "models": [{**PSPNET, "name": "psp-net"}, {**PSPNET, "name": "psp_net"}]}},
            r"matrix.models\[1\]: model names 'psp-net' and 'psp_net' differ only in - and _",
        ),
        (
            {"matrix": {**MATRIX, "models": [{**PSPNET, "config": "pspnet_r50-d9"}]}},
            r"matrix.models\[0\].config: unknown mmseg config 'pspnet_r50-d9': .*mmseg/.mim/configs",
        ),
        ({"model": {"config": "/nowhere/my.py"}}, r"model.config: mmseg config file /nowhere/my.py does not exist"),
    ],
)
def test_bad_models_and_variants_are_user_errors_naming_the_key_and_the_valid_choices(changes, message):
    with pytest.raises(UserError, match=message):
        plan(**changes)


def test_what_a_run_waits_for_and_records_is_planned_per_cell():
    from deeplabv3_pipeline.planning import artifacts

    planned = plan(matrix=MATRIX, shards=2)
    pspnet_ort = Cell("pspnet", VARIANTS["onnxruntime-fp32"])
    torch_only = [Cell(model, VARIANTS["pytorch-fp32"]) for model in ("deeplabv3", "pspnet")]
    assert planned.verification([pspnet_ort, planned.cell, pspnet_ort]) == [
        "results/models/pspnet/pspnet_verify.json",
        "results/models/deeplabv3/deeplabv3_verify.json",
    ]
    assert planned.verification(torch_only) == []  # PyTorch runs the checkpoint: no export to check
    assert plan(matrix=MATRIX, model={"verify": False}).verification([pspnet_ort]) == []
    assert planned.synthetic(pspnet_ort) == "dataset and checkpoint trained on synthetic frames"  # the default
    assert plan(demo={"checkpoint": "random"}, matrix=MATRIX).synthetic(pspnet_ort) == "dataset and checkpoint"
    steps = planned.run_steps()
    assert [step.rule for step in steps] == [
        "train_demo_checkpoint",
        "labels",
        "labels",
        "preprocess",
        "preprocess",
        "export_onnx",
        "simplify_onnx",
        "infer",
        "infer",
        "evaluate",
    ]
    assert steps[-1].benchmark == "results/benchmarks/evaluate/demo/val/deeplabv3/onnxruntime-fp32.tsv"
    ascend = plan(backend="ascend", precision="fp16")
    om = [artifacts.ATC.format(model="deeplabv3", precision="fp16", soc=soc) for soc in ("Ascend310", "Ascend310P3")]
    assert [step.rule for step in ascend.run_steps(om)].count("atc") == 2  # every soc's .om, once each


def test_the_benchmark_times_every_cpu_variant_or_the_chosen_ones_reference_first():
    from deeplabv3_pipeline.planning.variants import benchmark_variants

    default = benchmark_variants([], "pytorch-fp32", bf16=False)
    assert default[0] == "pytorch-fp32" and "onnxruntime-fp32-winograd" not in default
    assert not any("bf16" in name or "tensorrt" in name or "ascend" in name for name in default)
    assert {"pytorch-bf16", "openvino-bf16"} <= set(benchmark_variants([], "pytorch-fp32", bf16=True))
    assert benchmark_variants(["openvino-fp32"], "onnxruntime-fp32", bf16=False) == [
        "onnxruntime-fp32",
        "openvino-fp32",
    ]


def test_checkpoint_zoo_is_the_model_zoos_url_and_expect_miou_zoo_its_published_figure(tmp_path):
    from deeplabv3_pipeline.model.checkpoint import cached_path

    planned = plan(model={"checkpoint": "zoo"}, matrix={**MATRIX, "models": [{**PSPNET, "checkpoint": "zoo"}]})
    guide = "deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth"  # the guide's download
    assert planned.model("deeplabv3").checkpoint.endswith("/" + guide)
    assert planned.checkpoint("deeplabv3") == str(
        cached_path(planned.model("deeplabv3").checkpoint, Path("checkpoints"))
    )
    assert planned.model("pspnet").checkpoint.endswith("-2966598c.pth")
    assert planned.expected_miou("zoo") == 79.09 and planned.expected_miou(78.5) == 78.5
    own = tmp_path / "my.py"
    own.write_text("")  # a config file of the user's exists, but is no zoo entry
    with pytest.raises(UserError, match=r"matrix.models\[0\].checkpoint: zoo, but .* is not an mmseg model-zoo"):
        plan(matrix={**MATRIX, "models": [{**PSPNET, "config": str(own), "checkpoint": "zoo"}]})


def test_the_zoo_lists_its_cityscapes_entries(tmp_path):
    from ..conftest import run_script

    listed = run_script("zoo.py", "list", "--family", "pspnet").stdout
    assert "| pspnet_r50-d8_4xb2-40k_cityscapes-512x1024 | pspnet | 77.85 | https://" in listed
    run_script("zoo.py", "list", "--output", tmp_path / "zoo.md")
    rows = (tmp_path / "zoo.md").read_text().splitlines()[2:]
    assert len(rows) == 269  # every Cityscapes entry mmseg 1.2.2 ships


def test_the_start_checks_refuse_a_model_that_cannot_run_and_keep_their_passes(tmp_path, monkeypatch):
    """model_checks.check_models_run: PSANet (a compiled mmcv-full kernel) is refused naming the model;
    a pass is kept under its config file and package versions, so the next parse runs nothing."""
    from deeplabv3_pipeline.model import mmseg_model, model_checks

    psanet = {"name": "psanet", "config": "psanet_r50-d8_4xb2-40k_cityscapes-512x1024", "checkpoint": ""}
    cache = tmp_path / "models_that_run.json"
    with pytest.raises(
        UserError, match=r"^model psanet: model config psanet_r50-d8_4xb2-40k_cityscapes-512x1024 cannot"
    ):
        model_checks.check_models_run(plan(matrix={**MATRIX, "models": [psanet]}), cache)
    ((kept, footprint),) = json.loads(cache.read_text()).items()  # deeplabv3 (checked first) passed
    assert "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py torch=" in kept
    assert footprint["weight_mb"] > 200  # R50-D8's 260 MB: what its export jobs are sized from

    def never(config, opset=None):
        raise AssertionError(f"{config} was checked again")

    monkeypatch.setattr(mmseg_model, "check_model_runs", never)
    found = model_checks.check_models_run(plan(), cache)  # the kept pass, and its footprint
    assert found.refused == {} and found.footprints["deeplabv3"].to_json() == footprint


CGNET, ERFNET = "cgnet_fcn_4xb4-60k_cityscapes-680x680", "erfnet_fcn_4xb4-160k_cityscapes-512x1024"


def test_zoo_support_entries_join_the_matrix_and_refused_ones_get_no_cells():
    planned = plan(matrix=MATRIX, zoo={"support": [CGNET, ERFNET]})
    names = [entry.model for entry in planned.support]
    assert names == [f"zoo-{CGNET}", f"zoo-{ERFNET}"] and [e.family for e in planned.support] == ["cgnet", "erfnet"]
    assert [model.name for model in planned.models][-2:] == names
    assert all(planned.model(name).demo for name in names)  # random weights in the checkpoint's format
    cells = {(cell.model, cell.variant.name) for cell in planned.matrix_cells}
    assert {(names[0], "pytorch-fp32"), (names[0], "onnxruntime-int8"), (names[1], "onnxruntime-fp32")} <= cells
    kept = planned.without({names[0]: "it needs the mmdet package"})
    assert names[0] not in [model.name for model in kept.models]
    assert not any(cell.model == names[0] for cell in kept.matrix_cells)
    assert kept.refused == ((names[0], "it needs the mmdet package"),) and kept.support == planned.support
    assert planned.without({}) is planned
    # the support table's arguments: both entries, the refused one's reason, the ATC command of the other's .om
    args = kept.support_args()
    assert args[:8] == ["--entry", names[0], CGNET, "cgnet", "--entry", names[1], ERFNET, "erfnet"]
    assert args[8:11] == ["--refused", names[0], "it needs the mmdet package"]
    (atc,) = [args[index + 1 : index + 4] for index, arg in enumerate(args) if arg == "--atc"]
    assert atc[:2] == [names[1], "Ascend310P3"] and atc[2].startswith(
        f"atc --framework=5 --model=results/models/{names[1]}/{names[1]}_sim_bs1.onnx"
        f" --output=results/models/{names[1]}/fp16/{names[1]}_bs1_Ascend310P3 --input_format=NCHW"
        " --input_shape=input:1,3,1024,2048"
    )
    assert args[-2:] == ["--opset", "11"]


def test_zoo_support_families_is_one_model_per_family_and_bad_names_are_errors():
    families = plan(zoo={"support": "families"}).support
    assert len(families) >= 30 and families[0].model == f"zoo-{families[0].family}"
    assert len({entry.family for entry in families}) == len(families)
    with pytest.raises(UserError, match=r"zoo.support: 'cgnet_fcn_4xb4-60k_cityscapes-680' is not a .*close: cgnet_"):
        plan(zoo={"support": ["cgnet_fcn_4xb4-60k_cityscapes-680"]})


SLIDE_769 = {"name": "slide769", "config": "deeplabv3_r50-d8_4xb2-80k_cityscapes-769x769", "checkpoint": ""}


def test_without_an_input_shape_each_model_runs_at_its_test_pipelines_size():
    """model.input_shape unset: the images are Cityscapes' 1024x2048; the 769x769 config runs at 1025x2049 (its
    test pipeline's Resize), the guide's model at the image's size (no flag, no resize in its graph). The test
    size goes to the export, verify and pytorch flags and to what result.json records."""
    planned = plan(matrix={"models": [SLIDE_769], "variants": ["pytorch-fp32"]})
    assert planned.input_shape == (1024, 2048) and planned.config["model"]["input_shape"] == [1024, 2048]
    assert planned.test_shape("deeplabv3") is None and planned.test_shape("slide769") == (1025, 2049)
    assert planned.model_settings("slide769")["model"]["test_shape"] == [1025, 2049]
    assert planned.run_config(Cell("slide769", VARIANTS["pytorch-fp32"]))["model"]["test_shape"] == [1025, 2049]
    from deeplabv3_pipeline.backends import backend_flags

    assert "--test-shape 1025 2049" in " ".join(backend_flags("pytorch", planned.model_settings("slide769")))
    # a given input_shape: every model runs at exactly that size; a given test_shape: every model at that one
    given = plan(model={"input_shape": [64, 128]}, matrix={"models": [SLIDE_769]})
    assert given.input_shape == (64, 128) and given.test_shape("slide769") is None
    both = plan(model={"input_shape": [64, 128], "test_shape": [65, 129]}, matrix={"models": [SLIDE_769]})
    assert both.test_shape("deeplabv3") == both.test_shape("slide769") == (65, 129)


def test_a_cells_recorded_config_leaves_out_what_does_not_shape_it():
    """run_config is a param of each cell's evaluate: the layer comparison and a training that is not run
    must not re-evaluate a cell."""
    base = plan(demo={"checkpoint": "random"})
    cell = base.cell
    assert "debug" not in base.run_config(cell) and "training" not in base.run_config(cell)["demo"]
    other = plan(demo={"checkpoint": "random", "training": {"iterations": 7}}, debug={"variants": ["openvino-int8"]})
    assert other.run_config(cell) == base.run_config(cell)
    trained = plan(demo={"training": {"iterations": 7}})  # the trained checkpoint: its training shapes the cell
    assert trained.run_config(cell)["demo"]["training"]["iterations"] == 7


def test_the_trained_and_the_random_demo_checkpoints_never_share_a_file():
    trained, random = (
        plan().demo_checkpoint("deeplabv3"),
        plan(demo={"checkpoint": "random"}).demo_checkpoint("deeplabv3"),
    )
    assert (trained.rule, trained.output) == ("train_demo_checkpoint", "results/demo/checkpoints/trained/deeplabv3.pth")
    assert (random.rule, random.output) == ("demo_checkpoint", "results/demo/checkpoints/deeplabv3.pth")
    small = plan(model={"input_shape": [64, 128]})  # every size of a model shares its checkpoint
    assert small.checkpoint(small.cell.model) == trained.output


def test_the_debug_cells_are_models_by_debug_variants_each_against_its_reference_cell():
    pspnet = {"name": "pspnet", "config": "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024", "checkpoint": ""}
    debug = plan(
        matrix={"models": [pspnet]}, debug={"variants": ["onnxruntime-int8", "tensorrt-fp16"], "models": ["pspnet"]}
    )
    assert [(cell.model, cell.variant.name) for cell in debug.debug_cells] == [
        ("pspnet", "onnxruntime-int8"),
        ("pspnet", "tensorrt-fp16"),
    ]
    here, planned = debug.debug_cells
    assert debug.layer_reference(here) == Cell("pspnet", VARIANTS["pytorch-fp32"])
    folder = "results/debug/demo/val/pspnet"
    assert debug.layer_outputs(here) == {
        "json": f"{folder}/onnxruntime-int8/layers.json",
        "csv": f"{folder}/onnxruntime-int8/layers.csv",
        "figure": f"{folder}/onnxruntime-int8/layers.png",
    }
    assert debug.layer_source(here) == debug.model_file(here) == "results/models/pspnet/pspnet_sim_bs1_int8.onnx"
    # TensorRT is not here: its Polygraphy commands are planned, from the fp16 ONNX its engine is built from
    assert debug.layer_outputs(planned) == {"json": f"{folder}/tensorrt-fp16/layers.json"}
    assert debug.layer_source(planned) == "results/models/pspnet/pspnet_sim_bs1_fp16.onnx"
    assert debug.model_file(planned) == "results/models/pspnet/pspnet_bs1_fp16.engine"  # named in its commands
    every_model = plan(matrix={"models": [pspnet]}, debug={"variants": ["openvino-int8"]})
    assert [cell.model for cell in every_model.debug_cells] == ["deeplabv3", "pspnet"]
    assert plan().debug_cells == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"debug": {"variants": ["onnxruntime-int4"]}},
            "debug.variants: unknown variant 'onnxruntime-int4': choose from",
        ),
        (
            {"debug": {"variants": ["openvino-int8"], "models": ["psp"]}},
            "debug.models: unknown model 'psp': choose from deeplabv3",
        ),
        (
            {"debug": {"variants": ["openvino-int8"]}, "matrix": {"reference": "tensorrt-fp32"}},
            "matrix.reference: tensorrt-fp32, the reference of the layer comparison (debug.variants), "
            "does not run here: choose from onnxruntime-fp32",
        ),
    ],
)
def test_a_debug_key_naming_an_unknown_variant_or_model_names_the_valid_ones(changes, message):
    with pytest.raises(UserError, match=re.escape(message)):
        plan(**changes)
