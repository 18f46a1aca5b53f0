"""The validation matrix (scripts/matrix.py, deeplabv3_pipeline/report/matrix.py) on small hand-made results,
and select_result.py's gate. The matrix run of the workflow is tests/workflow/test_matrix.py."""

import csv
import json

import numpy as np

from deeplabv3_pipeline.report.matrix import COLUMNS, Gate, class_iou_deltas, classes_dropped_most

from ..conftest import run_script


def make_cell(
    results, model, variant, prediction, miou, images_per_s, first_frame=0, config="my_config.py", class_iou=None
):
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
        "per_class": {name: {"IoU": iou, "Acc": None} for name, iou in (class_iou or {}).items()},
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


def test_each_gate_check_passes_at_its_bound_and_fails_past_it_naming_why():
    relative = Gate(relative=0.99)
    assert relative.reasons(49.5, 50.0, 0.5) == []  # exactly 99 %
    assert relative.reasons(49.49, 50.0, 1.0) == ["mIoU 49.49 is below 0.99 x the reference's 50.0 (49.5)"]
    # 0.99 x 50.6 is 50.094: 50.09 fails, and the reason shows why
    assert relative.reasons(50.09, 50.6, 1.0) == ["mIoU 50.09 is below 0.99 x the reference's 50.6 (50.094)"]
    max_drop = Gate(max_drop=1.0)
    assert max_drop.reasons(49.1, 50.1, 1.0) == []  # 50.1 - 49.1 is 1.0000000000000014 in floats: 1.00 shown
    assert max_drop.reasons(49.09, 50.1, 1.0) == ["mIoU 49.09 is 1.01 points below the reference's 50.1 (max_drop 1)"]
    agreement = Gate(min_pixel_agreement=0.9)
    assert agreement.reasons(10.0, 50.0, 0.9) == []
    assert agreement.reasons(50.0, 50.0, 0.8999) == ["pixel agreement 0.8999 with the reference is below 0.9"]
    assert Gate(relative=0.99).reasons(None, 50.0, 1.0) == ["no mIoU, where the reference has 50.0"]
    assert Gate(max_drop=1).reasons(None, None, 1.0) == ["the reference cell has no mIoU: nothing to gate against"]
    assert Gate(min_pixel_agreement=0.9).reasons(None, None, 0.95) == []  # agreement alone needs no mIoU
    assert agreement.reasons(50.0, 50.0, 0.89996) == ["pixel agreement 0.89996 with the reference is below 0.9"]
    assert len(Gate(0.99, 0.1, 0.99).reasons(40.0, 50.0, 0.5)) == 3  # every failing check is named
    assert not Gate().checks_anything and Gate(max_drop=0).checks_anything


def test_class_deltas_and_the_classes_that_dropped_most():
    ours = {"per_class": {"road": {"IoU": 90.0}, "wall": {"IoU": 10.5}, "pole": {"IoU": None}, "sky": {"IoU": 60.0}}}
    reference = {
        "per_class": {"road": {"IoU": 91.25}, "wall": {"IoU": 20.0}, "pole": {"IoU": 5.0}, "sky": {"IoU": 59.0}}
    }
    deltas = class_iou_deltas(ours, reference)
    assert deltas == {"road": -1.25, "wall": -9.5, "pole": None, "sky": 1.0}
    assert classes_dropped_most(deltas) == "wall -9.50, road -1.25"
    assert classes_dropped_most({"sky": 1.0, "pole": None}) is None


def test_the_matrix_gates_each_cell_against_its_reference_and_fails_after_writing_the_table(tmp_path):
    classes = {"road": 80.0, "wall": 40.0, "car": 30.0}
    cells = [
        make_cell(tmp_path, "deeplabv3", "pytorch-fp32", [[1, 2, 3, 4]], 50.0, 0.5, class_iou=classes),
        make_cell(tmp_path, "deeplabv3", "onnxruntime-fp32", [[1, 2, 3, 4]], 50.0, 1.0, class_iou=classes),
        make_cell(
            tmp_path, "deeplabv3", "onnxruntime-int8", [[1, 2, 0, 0]], 45.0, 2.0,
            class_iou={"road": 79.0, "wall": 31.5, "car": 30.5},
        ),
    ]  # fmt: skip
    gate = ("--gate-relative", 0.99, "--gate-min-pixel-agreement", 0.9)
    output = tmp_path / "matrix"
    passed = run_script("matrix.py", "--results", *cells, "--reference", "pytorch-fp32", "--output", output, *gate)
    rows = {row["variant"]: row for row in json.loads(output.with_suffix(".json").read_text())["rows"]}
    assert [rows[variant]["gate"] for variant in rows] == ["pass", "pass", "fail"]
    int8 = rows["onnxruntime-int8"]
    assert int8["gate_reason"] == (
        "mIoU 45.0 is below 0.99 x the reference's 50.0 (49.5); pixel agreement 0.5 with the reference is below 0.9"
    )
    assert int8["delta_class_iou"] == {"road": -1.0, "wall": -8.5, "car": 0.5}
    assert int8["classes_dropped_most"] == "wall -8.50, road -1.00" and rows["onnxruntime-fp32"]["gate_reason"] is None
    table = output.with_suffix(".md").read_text()
    assert "| wall -8.50, road -1.00 | - | - | fail |" in table  # (no float layers: not a -mixed cell)
    assert "1 cell(s) of" in passed.stderr and "deeplabv3 onnxruntime-int8: mIoU 45.0" in passed.stderr
    output.with_suffix(".json").unlink()
    failed = run_script(
        "matrix.py", "--results", *cells, "--reference", "pytorch-fp32", "--output", output, *gate, "--fail-on-gate",
        check=False,
    )  # fmt: skip
    assert failed.returncode == 2 and failed.stderr.splitlines()[-1].startswith("error: 1 cell(s) of ")
    assert output.with_suffix(".json").is_file()  # written before it fails
    ungated = run_script("matrix.py", "--results", *cells, "--reference", "pytorch-fp32", "--output", output)
    assert (
        "fail" not in ungated.stdout and json.loads(output.with_suffix(".json").read_text())["rows"][2]["gate"] is None
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


def test_a_rows_gpu_is_the_one_its_speed_is_of_also_when_the_shards_record_it():
    from deeplabv3_pipeline.report.matrix import gpu_name

    assert gpu_name({"compute_images_per_s": 2.0}) is None  # the CPU's (its precision_evidence says so)
    assert gpu_name({"gpu": {"name": "NVIDIA H200", "memory_used_mb": 900.0}}) == "NVIDIA H200"
    shards = {"per_shard": [{"gpu": {"name": "NVIDIA H100 80GB HBM3"}}, {"gpu": {"name": "NVIDIA H200"}}]}
    assert gpu_name(shards) == "NVIDIA H100 80GB HBM3, NVIDIA H200"
