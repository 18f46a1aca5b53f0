"""The validation matrix (scripts/matrix.py, deeplabv3_pipeline/report/matrix.py) on small hand-made results,
and select_result.py's gate. The matrix run of the workflow is tests/workflow/test_matrix.py."""

import csv
import json

import numpy as np

from deeplabv3_pipeline.report.matrix import COLUMNS

from ..conftest import run_script


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
    assert list(table[0]) == list(COLUMNS)  # every declared column, in the declared order
    # what a reader of the table looks for first, whatever else the columns hold
    assert {"model", "variant", "miou", "delta_miou", "pixel_agreement", "compute_images_per_s"} <= set(COLUMNS)
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
