"""scripts/compare.py and scripts/select_result.py on small hand-made results."""

import csv
import json

import numpy as np

from .conftest import run_script


def make_backend(results, backend, prediction, miou, images_per_s, first_frame=0):
    """A result.json as scripts/evaluate.py writes it, recording its prediction files; returns its path."""
    folder = results / "infer" / backend
    folder.mkdir(parents=True)
    predictions = {}
    for index, array in enumerate(prediction, start=first_frame):
        frame = f"c_000000_00000{index}"
        predictions[frame] = str(folder / f"{frame}_leftImg8bit_0.bin")
        np.asarray(array, np.int64).tofile(predictions[frame])
    (results / backend).mkdir()
    result = {
        "backend": backend,
        "inference_precision": "fp32",
        "mIoU": miou,
        "aAcc": 90.0,
        "num_images": len(prediction),
        "throughput": {"compute_images_per_s": images_per_s, "end_to_end_images_per_s": images_per_s / 2},
        "predictions": predictions,
    }
    (results / backend / "result.json").write_text(json.dumps(result))
    (results / backend / "result.txt").write_text(f"aAcc: 90.0\nmIoU: {miou}\n")
    return results / backend / "result.json"


def test_compare_agreement_delta_and_speed(tmp_path):
    reference = make_backend(tmp_path, "pytorch", [[1, 2, 3, 4], [5, 5, 5, 5]], 50.0, 0.5)
    ort_result = make_backend(tmp_path, "onnxruntime", [[1, 2, 3, 0], [5, 5, 5, 5]], 49.5, 2.0)
    # a stale prediction beside them (an earlier run's frame) is never read: only recorded files are
    np.zeros(4, np.int64).tofile(tmp_path / "infer" / "onnxruntime" / "c_000000_000009_leftImg8bit_0.bin")
    completed = run_script(
        "compare.py", "--reference", reference, "--results", ort_result, "--output", tmp_path / "compare"
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
    assert [row["inference_precision"] for row in rows] == ["fp32", "fp32"]
    assert "onnxruntime" in completed.stdout and "-0.50" in completed.stdout


def test_compare_names_a_missing_backend(tmp_path):
    reference = make_backend(tmp_path, "pytorch", [[1, 2]], 50.0, 0.5)
    missing = tmp_path / "openvino" / "result.json"
    completed = run_script("compare.py", "--reference", reference, "--results", missing, check=False)
    assert completed.returncode == 2 and "openvino/result.json does not exist" in completed.stderr


def test_compare_refuses_backends_evaluated_on_other_frames(tmp_path):
    reference = make_backend(tmp_path, "pytorch", [[1, 2], [3, 4]], 50.0, 0.5)
    other = make_backend(tmp_path, "onnxruntime", [[1, 2], [3, 4]], 50.0, 0.5, first_frame=1)
    completed = run_script("compare.py", "--reference", reference, "--results", other, check=False)
    assert completed.returncode == 2 and "evaluated on different frames" in completed.stderr


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
