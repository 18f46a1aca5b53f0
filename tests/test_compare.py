"""scripts/compare.py and scripts/select_result.py on small hand-made results."""

import csv
import json

import numpy as np

from .conftest import run_script


def make_backend(results, backend, prediction, miou, images_per_s):
    folder = results / "infer" / backend
    folder.mkdir(parents=True)
    for index, array in enumerate(prediction):
        np.asarray(array, np.int64).tofile(folder / f"c_000000_00000{index}_leftImg8bit_0.bin")
    (results / backend).mkdir()
    result = {
        "backend": backend,
        "mIoU": miou,
        "aAcc": 90.0,
        "num_images": len(prediction),
        "throughput": {"compute_images_per_s": images_per_s, "end_to_end_images_per_s": images_per_s / 2},
    }
    (results / backend / "result.json").write_text(json.dumps(result))
    (results / backend / "result.txt").write_text(f"aAcc: 90.0\nmIoU: {miou}\n")


def test_compare_agreement_delta_and_speed(tmp_path):
    make_backend(tmp_path, "pytorch", [[1, 2, 3, 4], [5, 5, 5, 5]], 50.0, 0.5)
    make_backend(tmp_path, "onnxruntime", [[1, 2, 3, 0], [5, 5, 5, 5]], 49.5, 2.0)
    completed = run_script(
        "compare.py",
        "--reference",
        "pytorch",
        "--backends",
        "onnxruntime",
        "--results",
        tmp_path,
        "--output",
        tmp_path / "compare",
    )
    comparison = json.loads((tmp_path / "compare.json").read_text())
    ort = comparison["backends"]["onnxruntime"]
    assert ort["pixel_agreement"] == (0.75 + 1.0) / 2
    assert ort["per_image_agreement"] == {"c_000000_000000": 0.75, "c_000000_000001": 1.0}
    assert ort["mIoU_delta"] == -0.5 and ort["compute_images_per_s"] == 2.0
    assert comparison["backends"]["pytorch"]["pixel_agreement"] == 1.0
    with open(tmp_path / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["backend"] for row in rows] == ["pytorch", "onnxruntime"]
    assert "onnxruntime" in completed.stdout and "-0.50" in completed.stdout


def test_compare_names_a_missing_backend(tmp_path):
    make_backend(tmp_path, "pytorch", [[1, 2]], 50.0, 0.5)
    completed = run_script("compare.py", "--backends", "openvino", "--results", tmp_path, check=False)
    assert completed.returncode == 2 and "openvino/result.json does not exist" in completed.stderr


def test_mIoU_gate_fails_outside_tolerance_and_keeps_the_result(tmp_path):
    make_backend(tmp_path, "onnxruntime", [[1]], 78.70, 1.0)
    source, destination = tmp_path / "onnxruntime" / "result.json", tmp_path / "result.json"
    failed = run_script(
        "select_result.py", source, destination, "--expect-miou", 79.09, "--tolerance", 0.3, check=False
    )
    assert failed.returncode == 2 and "mIoU 78.7" in failed.stderr and "79.09 +/- 0.3" in failed.stderr
    assert source.is_file() and not destination.exists()
    run_script("select_result.py", source, destination, "--expect-miou", 79.0, "--tolerance", 0.3)
    assert json.loads(destination.read_text())["mIoU"] == 78.70
    assert (tmp_path / "result.txt").read_text() == "aAcc: 90.0\nmIoU: 78.7\n"
