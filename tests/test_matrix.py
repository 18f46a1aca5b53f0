"""The validation matrix (scripts/matrix.py, deeplabv3_pipeline/report/matrix.py) on small hand-made results,
select_result.py's gate, and (slow) the 2-model x 3-variant matrix of the workflow on the tiny demo."""

import csv
import json
import re

import numpy as np
import pytest

from .conftest import run_script
from .workflow import (
    MATRIX,
    PSPNET,
    TINY,
    cell_result,
    copy_run,
    merged,
    planned_rules,
    rules_in,
    snakemake,
    write_config,
)


def make_cell(results, model, variant, prediction, miou, images_per_s, first_frame=0, config="my_config.py"):
    """A result.json as scripts/evaluate.py writes it, recording its prediction files; returns its path."""
    folder = results / "infer" / model / variant
    folder.mkdir(parents=True)
    predictions = {}
    for index, array in enumerate(prediction, start=first_frame):
        frame = f"c_000000_00000{index}"
        predictions[frame] = str(folder / f"{frame}_leftImg8bit_0.bin")
        np.asarray(array, np.int64).tofile(predictions[frame])
    cell = results / "cells" / model / variant
    cell.mkdir(parents=True)
    backend, precision = variant.split("-")[:2]
    result = {
        "model": model,
        "variant": variant,
        "backend": backend,
        "inference_precision": precision,
        "mIoU": miou,
        "aAcc": 90.0,
        "num_images": len(prediction),
        "throughput": {"compute_images_per_s": images_per_s, "end_to_end_images_per_s": images_per_s / 2},
        "predictions": predictions,
        "config": {"precision": precision, "model": {"name": model, "config": config}},
    }
    (cell / "result.json").write_text(json.dumps(result))
    (cell / "result.txt").write_text(f"aAcc: 90.0\nmIoU: {miou}\n")
    return cell / "result.json"


def test_each_cell_is_compared_with_its_own_models_reference_and_the_published_miou(tmp_path):
    zoo = "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024"
    cells = [
        make_cell(tmp_path, "deeplabv3", "pytorch-fp32", [[1, 2, 3, 4], [5, 5, 5, 5]], 50.0, 0.5),
        make_cell(tmp_path, "deeplabv3", "onnxruntime-int8", [[1, 2, 3, 0], [5, 5, 5, 5]], 49.5, 2.0),
        make_cell(tmp_path, "pspnet", "pytorch-fp32", [[0, 0, 0, 0], [1, 1, 1, 1]], 40.0, 0.4, config=zoo),
        make_cell(tmp_path, "pspnet", "onnxruntime-int8", [[0, 0, 0, 0], [1, 1, 0, 0]], 39.0, 1.0, config=zoo),
    ]
    # a stale prediction beside them (an earlier run's frame) is never read: only recorded files are
    np.zeros(4, np.int64).tofile(
        tmp_path / "infer" / "deeplabv3" / "onnxruntime-int8" / "c_000000_000009_leftImg8bit_0.bin"
    )
    completed = run_script(
        "matrix.py", "--results", *cells, "--reference", "pytorch-fp32", "--output", tmp_path / "matrix"
    )
    matrix = json.loads((tmp_path / "matrix.json").read_text())
    rows = {(row["model"], row["variant"]): row for row in matrix["rows"]}
    assert list(rows) == [
        ("deeplabv3", "pytorch-fp32"),
        ("deeplabv3", "onnxruntime-int8"),
        ("pspnet", "pytorch-fp32"),
        ("pspnet", "onnxruntime-int8"),
    ]
    int8 = rows["deeplabv3", "onnxruntime-int8"]
    assert int8["pixel_agreement"] == (0.75 + 1.0) / 2 and int8["worst_frame"] == "c_000000_000000"
    assert int8["worst_frame_agreement"] == 0.75 and int8["delta_miou"] == -0.5 and int8["compute_images_per_s"] == 2.0
    assert int8["per_image_agreement"] == {"c_000000_000000": 0.75, "c_000000_000001": 1.0}
    assert int8["published_miou"] is None and int8["delta_published_miou"] is None  # not a model-zoo config
    assert int8["precision"] == "int8" and int8["result"] == str(cells[1])
    psp = rows["pspnet", "onnxruntime-int8"]  # against PSPNet's own reference, not DeepLabV3's
    assert psp["pixel_agreement"] == (1.0 + 0.5) / 2 and psp["delta_miou"] == -1.0
    assert psp["published_miou"] == 77.85 and psp["delta_published_miou"] == round(39.0 - 77.85, 2)
    assert rows["pspnet", "pytorch-fp32"]["pixel_agreement"] == 1.0
    with open(tmp_path / "matrix.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["model"], row["variant"]) for row in table] == list(rows)
    assert {
        "model",
        "variant",
        "backend",
        "precision",
        "inference_precision",
        "miou",
        "aacc",
        "delta_miou",
        "published_miou",
        "pixel_agreement",
        "compute_images_per_s",
        "end_to_end_images_per_s",
        "result",
    } <= set(table[0])
    assert "| pspnet | onnxruntime-int8 |" in completed.stdout and "-1.00" in completed.stdout
    assert (tmp_path / "matrix.md").read_text().startswith("| model | variant |")


def test_matrix_names_a_missing_cell(tmp_path):
    reference = make_cell(tmp_path, "deeplabv3", "pytorch-fp32", [[1, 2]], 50.0, 0.5)
    missing = tmp_path / "cells" / "deeplabv3" / "openvino-fp32" / "result.json"
    completed = run_script("matrix.py", "--results", reference, missing, "--reference", "pytorch-fp32", check=False)
    assert (
        completed.returncode == 2 and "openvino-fp32/result.json does not exist: evaluate that cell" in completed.stderr
    )


def test_matrix_refuses_cells_evaluated_on_other_frames_or_without_their_reference(tmp_path):
    reference = make_cell(tmp_path, "deeplabv3", "pytorch-fp32", [[1, 2], [3, 4]], 50.0, 0.5)
    other = make_cell(tmp_path, "deeplabv3", "onnxruntime-fp32", [[1, 2], [3, 4]], 50.0, 0.5, first_frame=1)
    completed = run_script("matrix.py", "--results", reference, other, "--reference", "pytorch-fp32", check=False)
    assert completed.returncode == 2 and "evaluated on different frames" in completed.stderr
    lonely = make_cell(tmp_path, "pspnet", "onnxruntime-fp32", [[1, 2], [3, 4]], 50.0, 0.5)
    completed = run_script("matrix.py", "--results", reference, lonely, "--reference", "pytorch-fp32", check=False)
    assert (
        completed.returncode == 2
        and "no result of model pspnet with the reference variant pytorch-fp32" in completed.stderr
    )


def test_mIoU_gate_fails_outside_tolerance_and_keeps_the_result(tmp_path):
    source = make_cell(tmp_path, "deeplabv3", "onnxruntime-fp32", [[1]], 78.70, 1.0)
    destination = tmp_path / "result.json"
    failed = run_script(
        "select_result.py", source, destination, "--expect-miou", 79.09, "--tolerance", 0.3, check=False
    )
    assert failed.returncode == 2 and "mIoU 78.7" in failed.stderr and "79.09 +/- 0.3" in failed.stderr
    assert source.is_file() and not destination.exists()
    run_script("select_result.py", source, destination, "--expect-miou", 79.0, "--tolerance", 0.3)
    assert json.loads(destination.read_text())["mIoU"] == 78.70
    assert (tmp_path / "result.txt").read_text() == "aAcc: 90.0\nmIoU: 78.7\n"


# ------------------------------------------------------------------------------------ Snakemake (slow)

MATRIX_CONFIG = merged(TINY, {"matrix": MATRIX})


def planned_outputs(workdir, target: str) -> list[str]:
    """Every output file of a dry run of ``target``."""
    planned = snakemake(workdir, "-n", target).stdout
    return [path for line in re.findall(r"^\s+output: (.*)$", planned, flags=re.MULTILINE) for path in line.split(", ")]


@pytest.mark.slow
def test_the_matrix_has_a_row_per_cell_each_with_its_own_files(matrix_run):
    matrix = json.loads((matrix_run / "results" / "matrix.json").read_text())
    rows = matrix["rows"]
    assert [(row["model"], row["variant"]) for row in rows] == [
        (model, variant) for model in ("deeplabv3", "pspnet") for variant in MATRIX["variants"]
    ]
    assert "SYNTHETIC" in matrix["note"] and "SYNTHETIC" in (matrix_run / "results" / "matrix.md").read_text()
    seen = {}
    for row in rows:
        result = json.loads((matrix_run / row["result"]).read_text())
        assert row["result"] == str(cell_result(row["variant"], row["model"]))
        assert (result["model"], result["variant"]) == (row["model"], row["variant"])
        for path in result["predictions"].values():  # no two cells share a prediction file
            assert path.startswith(f"results/infer/demo/val/{row['model']}/{row['variant']}/") and path not in seen
            seen[path] = row["variant"]
        assert row["published_miou"] == {"deeplabv3": 79.09, "pspnet": 77.85}[row["model"]]
        assert row["inference_precision"] == row["precision"] == row["variant"].split("-")[1]
    by_cell = {(row["model"], row["variant"]): row for row in rows}
    for model in ("deeplabv3", "pspnet"):
        for variant in ("onnxruntime-fp32", "openvino-fp32"):
            assert abs(by_cell[model, variant]["delta_miou"]) < 0.5, (model, variant)
    # PSPNet's pyramid pools bins that do not divide its 8x16 feature map: the export is exact there
    # (mmdeploy's floor(in/out) kernels agree on ~97 % of such pixels)
    verify = json.loads((matrix_run / "results/models/pspnet/pspnet_verify.json").read_text())
    assert verify["differing_decisive_pixels"] == 0.0
    assert by_cell["pspnet", "onnxruntime-fp32"]["pixel_agreement"] >= 0.9999
    assert by_cell["pspnet", "openvino-fp32"]["result"].endswith("pspnet/openvino-fp32/result.json")
    # the documented flow: the report holds the matrix
    workdir = copy_run(matrix_run, matrix_run.parent / "report")
    snakemake(workdir, "--report", "results/report.html", "all", "results/matrix.json")
    assert "results/report/matrix.png" in (workdir / "results" / "report.html").read_text()


@pytest.mark.slow
def test_adding_a_variant_or_a_model_plans_only_its_jobs(matrix_run):
    more = merged(MATRIX_CONFIG, {"matrix": {"variants": [*MATRIX["variants"], "onnxruntime-int8"]}})
    write_config(matrix_run, more)
    try:
        outputs = planned_outputs(matrix_run, "results/matrix.json")
        added = [path for path in outputs if not path.startswith(("results/matrix.", "results/report/matrix"))]
        # the new cells and the int8 model each model quantizes for them (its own file per model)
        assert added and all("/onnxruntime-int8/" in path or "_int8." in path for path in added), added
        assert {path for path in added if "_int8." in path} == {
            f"results/models/{name}/{name}_sim_bs1_int8.{suffix}"
            for name in ("deeplabv3", "pspnet")
            for suffix in ("onnx", "json")
        }
        fcn = {"name": "fcn", "config": "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"}
        write_config(matrix_run, merged(MATRIX_CONFIG, {"matrix": {"models": [PSPNET, fcn]}}))
        outputs = planned_outputs(matrix_run, "results/matrix.json")
        added = [path for path in outputs if not path.startswith(("results/matrix.", "results/report/matrix"))]
        assert added and all("/fcn/" in path or "/fcn." in path for path in added), added
    finally:
        write_config(matrix_run, MATRIX_CONFIG)
    assert "Nothing to be done" in snakemake(matrix_run, "-n", "results/matrix.json").stdout


@pytest.mark.slow
def test_any_cell_of_the_matrix_is_a_result_json_without_inference(matrix_run, tmp_path):
    workdir = copy_run(matrix_run, tmp_path / "copy")
    for backend in ("pytorch", "openvino", "onnxruntime"):
        write_config(workdir, merged(MATRIX_CONFIG, {"backend": backend}))
        assert planned_rules(workdir) <= {"result", "report_figures"}, backend
    # a matrix model as the configured one: its cells are found too
    write_config(workdir, merged(MATRIX_CONFIG, {"model": PSPNET, "matrix": {"models": []}, "backend": "openvino"}))
    assert rules_in(snakemake(workdir, "results/result.json").stdout) <= {"result", "report_figures"}
    result = json.loads((workdir / "results" / "result.json").read_text())
    assert (result["model"], result["variant"]) == ("pspnet", "openvino-fp32")
    assert result == json.loads((workdir / cell_result("openvino-fp32", "pspnet")).read_text())


@pytest.mark.slow
def test_bad_matrix_input_stops_at_start_naming_it_and_loses_nothing(matrix_run, tmp_path):
    from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint

    workdir = copy_run(matrix_run, tmp_path / "copy")
    before = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
    fcn = make_random_checkpoint("fcn_r50-d8_4xb2-40k_cityscapes-512x1024", tmp_path / "fcn.pth", seed=1)
    cases = [
        (
            {"matrix": {"models": [{**PSPNET, "checkpoint": str(fcn)}]}},
            f"error: model pspnet: checkpoint {fcn} does not fit the model config {PSPNET['config']}: ",
        ),
        (
            {"matrix": {"variants": ["onnxruntime-fp64"]}},
            "matrix.variants: unknown variant 'onnxruntime-fp64': choose from ",
        ),
        (
            {"matrix": {"models": [{**PSPNET, "name": "deeplabv3"}]}},
            "matrix.models[0]: a second model named 'deeplabv3'",
        ),
        (
            {"matrix": {"models": [{**PSPNET, "config": "pspnet_r50"}]}},
            "matrix.models[0].config: unknown mmseg config 'pspnet_r50'",
        ),
        ({"compare": {"backends": ["pytorch"]}}, "error: config key compare is gone: use matrix (variants, reference)"),
    ]
    for changes, message in cases:
        write_config(workdir, merged(MATRIX_CONFIG, changes))
        failed = snakemake(workdir, "-n", "results/matrix.json", check=False)
        assert failed.returncode != 0 and message in failed.stdout, failed.stdout[-3000:]
        if "does not fit" in message:  # the mismatched keys are named: PSPNet's pyramid is not FCN's
            assert re.search(r"\d+ missing \(e\.g\. decode_head\.bottleneck", failed.stdout), failed.stdout[-2000:]
    after = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
    assert after == before  # nothing computed is lost or touched
    # a checkpoint that fits is checked once, then found fitting by its fingerprint
    psp = make_random_checkpoint(PSPNET["config"], tmp_path / "psp.pth", seed=1)
    write_config(workdir, merged(MATRIX_CONFIG, {"matrix": {"models": [{**PSPNET, "checkpoint": str(psp)}]}}))
    assert "export_onnx" in planned_rules(workdir, "results/matrix.json")
    from deeplabv3_pipeline.evaluation.provenance import fingerprint

    fitted = json.loads((workdir / ".snakemake" / "deeplabv3" / "checkpoints_that_fit.json").read_text())
    assert fitted == [f"{fingerprint([str(psp)])} {PSPNET['config']}"]  # by size and mtime: a new file is checked


@pytest.mark.slow
def test_a_zoo_model_by_name_plans_the_zoos_checkpoint_and_gate(tmp_path):
    """`checkpoint: zoo` and `expect.miou: zoo` in a dry run (nothing is downloaded: no network here)."""
    config = {"model": {"checkpoint": "zoo", "cache_dir": "cache"}, "expect": {"miou": "zoo"}}
    write_config(tmp_path, merged(TINY, config))
    planned = snakemake(tmp_path, "-n", "-p", "results/result.json").stdout
    url = "https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r50-d8_512x1024_40k_cityscapes/"
    assert f"fetch_checkpoint.py {url}" in planned and "acadc2f8.pth --output cache/" in planned
    assert "--expect-miou 79.09 --tolerance 0.3" in planned  # the published figure is the gate
    write_config(
        tmp_path,
        merged(TINY, {"model": {"config": "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"}, "expect": {"miou": "zoo"}}),
    )
    assert "--expect-miou 72.25" in snakemake(tmp_path, "-n", "-p", "results/result.json").stdout


@pytest.mark.slow
def test_a_model_that_cannot_run_here_is_refused_at_start(tmp_path):
    """PSANet in the matrix: the dry run stops at start with the reason (its compiled PSAMask kernel)."""
    psanet = {"name": "psanet", "config": "psanet_r50-d8_4xb2-40k_cityscapes-512x1024", "checkpoint": ""}
    write_config(tmp_path, merged(TINY, {"matrix": {"models": [psanet]}}))
    failed = snakemake(tmp_path, "-n", "results/matrix.json", check=False)
    assert failed.returncode != 0
    assert "error: model psanet: model config psanet_r50-d8_4xb2-40k_cityscapes-512x1024 cannot run" in failed.stdout
    assert "it calls mmcv._ext.psamask_forward, a compiled kernel of mmcv-full" in failed.stdout
    assert not (tmp_path / "results").exists()
