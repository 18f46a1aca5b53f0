"""Each stage's CLI, run as a user runs it, on the tiny synthetic dataset and random checkpoint."""

import json
import re
import shutil

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deeplabv3_pipeline.backends import open_backend
from deeplabv3_pipeline.data.cityscapes import discover_frames
from deeplabv3_pipeline.data.transform import preprocess_image
from deeplabv3_pipeline.model.mmseg_model import load_export_model, predict_class_ids

from ..conftest import MODEL_CONFIG, REPO, SHAPE, run_infer, run_program, run_script


@pytest.mark.parametrize("script", sorted(path.name for path in (REPO / "scripts").glob("*.py")))
def test_every_stage_cli_starts_as_a_program(script):
    """The entry points themselves, in a new Python each (the other CLI tests call ``main`` in-process; the
    workflow's jobs run them as programs too)."""
    completed = run_program(script, "--help")
    assert completed.returncode == 0 and completed.stdout.startswith("usage: "), completed.stderr[-2000:]


def test_a_programs_bad_input_is_one_error_line_and_exit_code_2(demo_root, tmp_path):
    """run_cli's exit code and message, through ``sys.exit`` of a real process."""
    completed = run_program(
        "preprocess.py", demo_root / "leftImg8bit" / "val", tmp_path, "--input-shape", 32, 64, check=False
    )
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    last = completed.stderr.splitlines()[-1]  # (after the progress bar's line)
    assert last.startswith("error: ") and "is 64x128 (HxW) but model.input_shape is 32x64" in last


def test_preprocess_writes_one_exact_bin_per_image(demo_root, prep_dir):
    frames = discover_frames(demo_root, "val")
    assert sorted(p.name for p in prep_dir.iterdir()) == sorted(f"{f.stem}.bin" for f in frames)
    for frame in frames:
        data = np.fromfile(prep_dir / f"{frame.stem}.bin", dtype=np.float32)
        assert data.size == 3 * SHAPE[0] * SHAPE[1]
        np.testing.assert_array_equal(data, preprocess_image(frame.image(demo_root, "val"), SHAPE).ravel())


def test_preprocess_converts_exactly_the_files_given(demo_root, prep_dir, tmp_path):
    images = sorted((demo_root / "leftImg8bit" / "val").rglob("*.png"))[1:3]
    outputs = [tmp_path / "out" / f"{index}.bin" for index in range(2)]
    run_script("preprocess.py", "--images", *images, "--outputs", *outputs, "--input-shape", *SHAPE)
    assert sorted((tmp_path / "out").iterdir()) == outputs
    for image, output in zip(images, outputs, strict=True):
        assert output.read_bytes() == (prep_dir / image.name.replace(".png", ".bin")).read_bytes()
    mismatched = run_script("preprocess.py", "--images", *images, "--outputs", outputs[0], check=False)
    assert mismatched.returncode == 2 and "--images has 2 files but --outputs 1" in mismatched.stderr


def test_preprocess_refuses_other_sizes_and_names_the_file(demo_root, tmp_path):
    result = run_script(
        "preprocess.py", demo_root / "leftImg8bit" / "val", tmp_path, "--input-shape", 32, 64, check=False
    )
    assert result.returncode == 2
    assert "_leftImg8bit.png is 64x128 (HxW) but model.input_shape is 32x64" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_labels_writes_train_ids_outside_the_dataset(demo_root, tmp_path):
    before = sorted(demo_root.rglob("*"))
    run_script("make_labels.py", "--gt_path", demo_root / "gtFine" / "val", "--output", tmp_path)
    assert sorted(demo_root.rglob("*")) == before  # the dataset is never written to
    made = sorted(tmp_path.rglob("*_gtFine_labelTrainIds.png"))
    assert len(made) == 4
    source = next(demo_root.rglob(made[0].name.replace("labelTrainIds", "labelIds")))
    label_ids = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    train_ids = cv2.imread(str(made[0]), cv2.IMREAD_UNCHANGED)
    assert train_ids.dtype == np.uint8 and train_ids.shape == SHAPE
    np.testing.assert_array_equal(train_ids[label_ids == 7], 0)  # road
    np.testing.assert_array_equal(train_ids[label_ids == 0], 255)  # unlabeled -> ignore


def test_make_labels_converts_exactly_the_files_given(demo_root, tmp_path):
    sources = sorted(demo_root.rglob("*_gtFine_labelIds.png"))[:2]
    targets = [tmp_path / "a" / "one.png", tmp_path / "b" / "two.png"]
    run_script("make_labels.py", "--label-ids", *sources, "--train-ids", *targets)
    assert sorted(tmp_path.rglob("*.png")) == targets
    assert cv2.imread(str(targets[1]), cv2.IMREAD_UNCHANGED).shape == SHAPE


def test_make_labels_rejects_foreign_values(tmp_path):
    city = tmp_path / "gt" / "x"
    city.mkdir(parents=True)
    cv2.imwrite(str(city / "x_000000_000000_gtFine_labelIds.png"), np.full((4, 4), 99, np.uint8))
    result = run_script("make_labels.py", "--gt_path", tmp_path / "gt", "--output", tmp_path / "out", check=False)
    assert result.returncode == 2 and "x_000000_000000_gtFine_labelIds.png holds values [99]" in result.stderr


def test_exported_onnx_has_the_guide_interface(onnx_models):
    for path in onnx_models:
        model = onnx.load(str(path))
        (graph_input,), (graph_output,) = model.graph.input, model.graph.output
        assert graph_input.name == "input" and graph_output.name == "output"
        assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert graph_output.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, 3, *SHAPE]
        assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [1, 1, *SHAPE]
    assert onnx.load(str(onnx_models[0])).opset_import[0].version == 11


def test_onnx_equals_mmseg_pytorch_on_demo_images(onnx_models, prep_dir, checkpoint):
    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE)
    session = ort.InferenceSession(str(onnx_models[1]), providers=["CPUExecutionProvider"])
    for path in sorted(prep_dir.glob("*.bin")):
        image = np.fromfile(path, dtype=np.float32).reshape(1, 3, *SHAPE)
        reference = predict_class_ids(model, image)
        exported = session.run(None, {"input": image})[0]
        assert np.mean(exported == reference) > 0.999
        assert len(np.unique(reference)) >= 3


def test_export_rejects_a_checkpoint_of_another_model(tmp_path):
    import torch

    bad = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3)}}, bad)
    result = run_script(
        "export_onnx.py",
        MODEL_CONFIG,
        "--checkpoint",
        bad,
        "--output-file",
        tmp_path / "x.onnx",
        "--shape",
        *SHAPE,
        check=False,
    )
    assert result.returncode == 2 and "does not fit the model config" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.fixture(scope="module")
def predictions(tmp_path_factory, onnx_models, prep_dir, checkpoint):
    """Outputs of every CPU backend over the demo bins: backend -> folder."""
    folders = {}
    for backend in ("onnxruntime", "openvino", "pytorch"):
        folder = tmp_path_factory.mktemp(backend)
        model = checkpoint if backend == "pytorch" else onnx_models[1]
        extra = ["--model-config", MODEL_CONFIG, "--input-shape", *SHAPE] if backend == "pytorch" else []
        run_infer(backend, model, prep_dir, folder, "--outfmt", "BIN", "--threads", 2, *extra)
        folders[backend] = folder
    return folders


def test_infer_writes_ais_bench_layout_and_summary(predictions, prep_dir):
    for backend, folder in predictions.items():
        names = sorted(p.name for p in folder.glob("*_0.bin"))
        assert names == sorted(p.stem + "_0.bin" for p in prep_dir.glob("*.bin"))
        for name in names:
            assert (folder / name).stat().st_size == SHAPE[0] * SHAPE[1] * 8  # int64 1x1xHxW
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["backend"] == backend and summary["num_images"] == 4
        assert summary["inference_precision"] == "fp32", summary["precision_evidence"]
        for key in ("min", "max", "mean", "median", "percentile(99%)"):
            assert summary["NPU_compute_time"][key] > 0
        assert summary["throughput"] == pytest.approx(1000 / summary["compute_time"]["mean"])
        assert summary["end_to_end"]["images_per_s"] > 0
        assert not list(folder.glob(".*")), "no partial files left behind"


def test_cpu_backends_agree(predictions):
    reference = sorted(predictions["pytorch"].glob("*_0.bin"))
    assert len(reference) == 4  # one per demo frame: the loop below compares something
    for backend in ("onnxruntime", "openvino"):
        for path in reference:
            ours = np.fromfile(predictions[backend] / path.name, dtype=np.int64)
            assert np.mean(ours == np.fromfile(path, dtype=np.int64)) > 0.999, (backend, path.name)


def test_evaluate_on_an_ais_bench_output_folder(predictions, demo_root, tmp_path):
    labels = tmp_path / "labels"
    run_script("make_labels.py", "--gt_path", demo_root / "gtFine" / "val", "--output", labels)
    # ais_bench's own layout: a named output folder with sumary.json inside and a *_summary.json beside it
    folder = tmp_path / "result" / "bs1"
    shutil.copytree(predictions["onnxruntime"], folder)
    (folder / "summary.json").unlink()
    (folder / "sumary.json").write_text("{}")
    (tmp_path / "result" / "bs1_summary.json").write_text("{}")
    run_script(
        "evaluate.py",
        f"--output_path={tmp_path / 'result'}",
        f"--gt_path={labels}",
        f"--result_path={tmp_path / 'out' / 'result'}",
    )
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    text = (tmp_path / "out" / "result.txt").read_text()
    assert text == f"aAcc: {result['aAcc']}\nmIoU: {result['mIoU']}\n"
    assert result["num_images"] == 4 and len(result["per_class"]) == 19
    assert 0 <= result["mIoU"] <= 100
    # recompute from the files, independently of the script
    from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES
    from deeplabv3_pipeline.evaluation.metrics import confusion_matrix, summarize

    total = 0
    for label_path in labels.rglob("*.png"):
        frame = label_path.name.removesuffix("_gtFine_labelTrainIds.png")
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        prediction = np.fromfile(folder / f"{frame}_leftImg8bit_0.bin", dtype=np.int64).reshape(label.shape)
        total = total + confusion_matrix(prediction, label, 19, 255)
    assert summarize(total, CLASS_NAMES)["mIoU"] == result["mIoU"]


def test_infer_stops_when_the_model_cannot_run_the_precision_asked(onnx_models, prep_dir, tmp_path):
    result = run_infer("onnxruntime", onnx_models[1], prep_dir, tmp_path, "--precision", "int8", check=False)
    assert result.returncode == 2
    assert "asked for precision int8, but onnxruntime runs" in result.stderr and "at fp32" in result.stderr
    assert not list(tmp_path.glob("*_0.bin"))
    unsupported = run_infer("onnxruntime", onnx_models[1], prep_dir, tmp_path, "--precision", "fp16", check=False)
    assert unsupported.returncode == 2 and "backend onnxruntime has no precision fp16" in unsupported.stderr


def test_infer_reads_exactly_the_files_given(onnx_models, prep_dir, tmp_path):
    chosen = sorted(prep_dir.glob("*.bin"))[:2]
    result = run_infer("onnxruntime", onnx_models[1], chosen, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*_0.bin")) == [p.stem + "_0.bin" for p in chosen]
    assert json.loads((tmp_path / "summary.json").read_text())["num_images"] == 2
    # its figures printed rounded as the tables are (ms to 0.1, images/s to 0.001)
    printed = r"2 images at fp32, compute \d+\.\d ms/image \(\d+\.\d{3} images/s\), end to end \d+\.\d{3} images/s\n"
    assert re.search(printed, result.stderr), result.stderr


def test_evaluate_with_exact_files_ignores_what_else_the_folders_hold(predictions, demo_root, tmp_path):
    labels = tmp_path / "labels"
    run_script("make_labels.py", "--gt_path", demo_root / "gtFine" / "val", "--output", labels)
    label_files = sorted(labels.rglob("*.png"))[:3]
    frames = [path.name.removesuffix("_gtFine_labelTrainIds.png") for path in label_files]
    chosen = [predictions["onnxruntime"] / f"{frame}_leftImg8bit_0.bin" for frame in frames]
    args = ["--labels", *label_files, "--result_path", tmp_path / "exact"]
    run_script("evaluate.py", "--predictions", *chosen, *args)
    exact = json.loads((tmp_path / "exact.json").read_text())
    assert exact["num_images"] == 3 and sorted(exact["predictions"]) == sorted(frames)
    assert exact["predictions"][frames[0]] == str(chosen[0])
    missing = run_script("evaluate.py", "--predictions", *chosen[:2], *args, check=False)
    assert missing.returncode == 2 and "1 labels have no prediction" in missing.stderr


def test_evaluate_names_both_sides_of_a_missing_pair(predictions, demo_root, tmp_path):
    labels = tmp_path / "labels"
    run_script("make_labels.py", "--gt_path", demo_root / "gtFine" / "val", "--output", labels)
    missing = sorted(labels.rglob("*.png"))[0]
    missing.unlink()
    result = run_script(
        "evaluate.py",
        "--output_path",
        predictions["onnxruntime"],
        "--gt_path",
        labels,
        "--result_path",
        tmp_path / "r",
        check=False,
    )
    frame = missing.name.removesuffix("_gtFine_labelTrainIds.png")
    assert result.returncode == 2
    assert f"{frame}_leftImg8bit_0.bin has no {missing.name}" in result.stderr


def test_fp16_model_keeps_its_io_types_and_computes_the_same_classes(onnx_models, prep_dir, tmp_path):
    """convert_fp16.py's model (what the fp16 TensorRT engine is built from): float16 weights, float32 input,
    int64 class ids, Resize kept fp32; OpenVINO runs it here and it agrees with the fp32 model."""
    fp16 = tmp_path / "deeplabv3_sim_bs1_fp16.onnx"
    run_script("convert_fp16.py", onnx_models[1], fp16)
    record = json.loads(fp16.with_suffix(".json").read_text())
    assert record["initializers_after"].get("FLOAT16") and "Resize" in record["kept_fp32_ops"]
    model = onnx.load(str(fp16))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    reference = open_backend("onnxruntime", onnx_models[1])
    converted = open_backend("openvino", fp16)
    for path in sorted(prep_dir.glob("*.bin"))[:2]:
        image = np.fromfile(path, np.float32).reshape(1, 3, *reference.input_shape)
        assert np.mean(reference.run(image) == converted.run(image)) > 0.99, path.name
    refused = run_script("convert_fp16.py", tmp_path / "missing.onnx", tmp_path / "x.onnx", check=False)
    assert refused.returncode == 2 and refused.stderr.strip().endswith("run the workflow's simplify_onnx rule first")


def test_a_label_of_another_size_is_blamed_not_the_prediction(predictions, demo_root, tmp_path):
    """A labelIds PNG of another size than its image: make_labels names it; a trainIds label of another size
    reaching evaluate is named there, with or without the images' size (the prediction is right)."""
    label_ids = sorted((demo_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    small = tmp_path / "small" / label_ids[0].name
    small.parent.mkdir()
    cv2.imwrite(str(small), cv2.imread(str(label_ids[0]), cv2.IMREAD_UNCHANGED)[::2, ::2])
    train_ids = tmp_path / "made" / small.name.replace("labelIds", "labelTrainIds")
    refused = run_script(
        "make_labels.py", "--label-ids", small, "--train-ids", train_ids, "--shape", *SHAPE, check=False
    )
    assert refused.returncode == 2 and f"label image {small} is 32x64 (HxW) but the images are 64x128" in refused.stderr
    assert not train_ids.exists()
    run_script("make_labels.py", "--label-ids", small, "--train-ids", train_ids)  # without --shape: by hand
    frame = small.name.removesuffix("_gtFine_labelIds.png")
    prediction = predictions["onnxruntime"] / f"{frame}_leftImg8bit_0.bin"
    common = ["--predictions", prediction, "--labels", train_ids, "--result_path", tmp_path / "r"]
    with_shape = run_script("evaluate.py", *common, "--shape", *SHAPE, check=False)
    assert with_shape.returncode == 2
    assert f"label {train_ids} is 32x64 (HxW) but the images are 64x128" in with_shape.stderr
    without = run_script("evaluate.py", *common, check=False)
    assert without.returncode == 2 and f"label {train_ids} is 32x64" in without.stderr
    assert f"prediction {prediction} holds 8,192 pixels" in without.stderr


def test_verify_onnx_writes_its_record_and_refuses_another_models_onnx(onnx_models, checkpoint, tmp_path):
    record = tmp_path / "verify.json"
    args = ["--checkpoint", checkpoint, "--shape", *SHAPE, "--record", record]
    run_script("verify_onnx.py", onnx_models[0], MODEL_CONFIG, *args)
    verified = json.loads(record.read_text())
    assert verified["differing_decisive_pixels"] <= verified["tolerance"] == 1e-4
    assert len(verified["model_sha256"]) == 64
    # the same ONNX against another checkpoint (other weights): most pixels differ, no record
    from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint

    other = make_random_checkpoint(MODEL_CONFIG, tmp_path / "other.pth", seed=11)
    record.unlink()
    wrong = run_script(
        "verify_onnx.py",
        onnx_models[0],
        MODEL_CONFIG,
        "--checkpoint",
        other,
        "--shape",
        *SHAPE,
        "--record",
        record,
        check=False,
    )
    assert wrong.returncode == 2 and "ONNX Runtime and PyTorch disagree on" in wrong.stderr
    assert not record.exists()
