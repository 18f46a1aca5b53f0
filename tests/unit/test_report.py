"""The report: deeplabv3_pipeline/report/ (figures, plots, summary) and the scripts/report.py CLI. The report
rules and `snakemake --report` are tests/workflow/test_report.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES, IGNORE_INDEX, PALETTE, label_ids_to_train_ids
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.report import figures, plots, summary

from ..conftest import SHAPE, run_script
from ..helpers import (
    FIGURE_FILES,
    TAB_RED,
    assert_readable_figure,
    html_tables,
    pixels_of,
    read_png,
)

# ------------------------------------------------------------------------------------------ pure parts


def test_examples_are_the_lowest_and_highest_frames_without_unscored_ones():
    per_image = {f"f{i}": {"mIoU": float(i), "aAcc": 50.0} for i in range(10)}
    per_image["empty"] = {"mIoU": None, "aAcc": None}
    assert figures.pick_examples(per_image, 4) == [
        ("f0", "lowest"),
        ("f1", "lowest"),
        ("f8", "highest"),
        ("f9", "highest"),
    ]
    assert figures.pick_examples(per_image, 3) == [("f0", "lowest"), ("f1", "lowest"), ("f9", "highest")]
    few = {"a": {"mIoU": 3.0}, "b": {"mIoU": 1.0}, "c": {"mIoU": None}}
    assert figures.pick_examples(few, 4) == [("b", "lowest"), ("a", "highest")]
    assert figures.pick_examples(few, 0) == []


def test_confusion_rows_are_normalised_per_label_and_empty_rows_are_nan():
    counts = np.zeros((19, 19), dtype=np.int64)
    counts[0, 0], counts[0, 1], counts[2, 2] = 3, 1, 5
    percent = plots.normalise_rows(counts)
    assert percent[0, 0] == 75 and percent[0, 1] == 25 and percent[2, 2] == 100
    assert np.isnan(percent[1]).all()
    assert np.allclose(np.nansum(percent, axis=1)[[0, 2]], 100)


def test_colorize_uses_the_cityscapes_palette_and_black_for_ignored():
    classes = np.array([[0, 13], [IGNORE_INDEX, 18]])
    rgb = plots.colorize(classes)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [128, 64, 128]  # road
    assert rgb[0, 1].tolist() == PALETTE[13].tolist()  # car
    assert rgb[1, 0].tolist() == [0, 0, 0]
    assert rgb[1, 1].tolist() == PALETTE[18].tolist()


def test_references_and_differences_only_for_real_inputs():
    real = {"aAcc": 96.0, "mIoU": 79.0, "mAcc": 86.0, "synthetic_inputs": None}
    synthetic = dict(real, synthetic_inputs="dataset and checkpoint")
    assert [value for _, value in summary.references_for(real)] == [79.09, 79.06, 79.12]
    assert summary.references_for(synthetic) == ()
    header, rows = summary.metric_rows(real)
    assert header[1] == "this run (%)" and [row[0] for row in rows[:3]] == ["aAcc", "mIoU", "mAcc"]
    assert rows[1][2:] == ["79.09", "79.06", "79.12"]
    assert rows[3][2:] == ["-0.09", "-0.06", "-0.12"]
    assert summary.metric_rows(synthetic)[1][3][2] == "n/a (synthetic run)"


def test_benchmark_files_are_read_and_named_by_their_path(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = [tmp_path / "export_onnx.tsv", tmp_path / "infer" / "onnxruntime" / "shard0.tsv"]
    files[1].parent.mkdir(parents=True)
    files[0].write_text(header + "21.96\t0:00:21\t1460.68\t0\t0\t0\t0\t0\t0\t0\n")
    files[1].write_text(header + "3.0\t0:00:03\tNA\t0\t0\t0\t0\t0\t0\t0\n" + "5.0\t0:00:05\tNA\t0\t0\t0\t0\t0\t0\t0\n")
    rows = figures.read_benchmarks(files)
    assert [row[:2] for row in rows] == [("export_onnx", 21.96), ("infer/onnxruntime/shard0", 4.0)]
    assert rows[0][2] == pytest.approx(1460.68) and np.isnan(rows[1][2])


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, demo_root) -> dict[str, Path]:
    """A demo dataset, trainIds labels, predictions (label with noise) and their result.json from evaluate.py."""
    folder = tmp_path_factory.mktemp("report_inputs")
    labels, predictions = folder / "labels", folder / "infer"
    predictions.mkdir()
    rng = np.random.default_rng(0)
    for path in sorted((demo_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png")):
        train_ids = label_ids_to_train_ids(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
        stem = path.name.removesuffix("_gtFine_labelIds.png")
        target = labels / path.parent.name / f"{stem}_gtFine_labelTrainIds.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), train_ids)
        prediction = np.where(train_ids == IGNORE_INDEX, 0, train_ids).astype(np.int64)
        noise = rng.random(prediction.shape) < rng.uniform(0.05, 0.6)  # a different mIoU per frame
        prediction[noise] = rng.integers(0, 19, int(noise.sum()))
        prediction.reshape(1, 1, *SHAPE).tofile(predictions / f"{stem}_leftImg8bit_0.bin")
    run_script(
        "evaluate.py",
        "--output_path",
        predictions,
        "--gt_path",
        labels,
        "--result_path",
        folder / "result",
        "--backend",
        "onnxruntime",
    )
    return {
        "result": folder / "result.json",
        "images": demo_root / "leftImg8bit" / "val",
        "labels": labels,
        "predictions": predictions,
    }


def make_figures(inputs: dict[str, Path], outdir: Path, examples: int = 4) -> list[Path]:
    """The figures of ``inputs`` in this process (the CLI is run by the first test and by Snakemake)."""
    return figures.make_figures(
        inputs["result"], [inputs["images"]], [inputs["labels"]], [inputs["predictions"]], [], outdir, examples
    )


def figures_args(inputs: dict[str, Path], outdir: Path, *extra: object) -> list[object]:
    return [
        "figures",
        "--result",
        inputs["result"],
        "--images",
        inputs["images"],
        "--labels",
        inputs["labels"],
        "--predictions",
        inputs["predictions"],
        "--outdir",
        outdir,
        *extra,
    ]


def test_figures_cli_writes_readable_figures_and_tables(evaluated, tmp_path):
    benchmark = tmp_path / "bench" / "evaluate.tsv"
    benchmark.parent.mkdir()
    benchmark.write_text("s\th:m:s\tmax_rss\n1.5\t0:00:01\t70.0\n")
    run_script("report.py", *figures_args(evaluated, tmp_path / "report", "--benchmarks", benchmark))
    out = tmp_path / "report"
    # stamp.json: {} for a result.json made by hand (no workflow config to stamp: test_stamp.py)
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURE_FILES, "summary.md", "summary.html", "stamp.json"])
    for name in FIGURE_FILES:
        assert_readable_figure(out / name)
    # four frames: two lowest and two highest mIoU, each row image | ground truth | prediction
    examples = read_png(out / "examples.png")
    assert examples.shape[0] > examples.shape[1] * 0.6

    result = json.loads(evaluated["result"].read_text())
    tables = html_tables((out / "summary.html").read_text())
    metrics, classes, run, runtime = tables
    assert metrics[0][:2] == ["metric", "this run (%)"] and "PyTorch (mmseg) (%)" in metrics[0]
    assert metrics[2][:3] == ["mIoU", f"{result['mIoU']:.2f}", "79.09"]
    assert [row[1] for row in classes[1:]] == list(CLASS_NAMES)
    assert classes[1][2] == f"{result['per_class']['road']['IoU']:.2f}"
    assert ["backend", "onnxruntime"] in run
    assert runtime[1] == ["evaluate", "1.5", "70"]
    markdown = (out / "summary.md").read_text()
    assert f"| mIoU | {result['mIoU']:.2f} | 79.09 |" in markdown and "| 13 | car |" in markdown


def test_synthetic_run_is_said_in_every_table(evaluated, tmp_path):
    result = json.loads(evaluated["result"].read_text())
    synthetic = tmp_path / "result.json"
    synthetic.write_text(json.dumps(dict(result, synthetic_inputs="dataset and checkpoint")))
    inputs = dict(evaluated, result=synthetic)
    make_figures(inputs, tmp_path / "report", examples=2)
    assert "SYNTHETIC inputs (dataset and checkpoint)" in (tmp_path / "report" / "summary.md").read_text()
    assert "SYNTHETIC inputs" in (tmp_path / "report" / "summary.html").read_text()
    examples = read_png(tmp_path / "report" / "examples.png")
    assert examples.shape[0] < examples.shape[1] * 0.6  # two rows only


def test_missing_prediction_is_a_clear_error(evaluated, tmp_path):
    inputs = dict(evaluated, predictions=tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no \*_leftImg8bit_0\.bin files in prediction folder"):
        make_figures(inputs, tmp_path / "report")
    assert not (tmp_path / "report").exists()  # every input is read before any figure is written


def test_a_frame_without_its_prediction_file_is_a_clear_error(evaluated, tmp_path):
    """With exact files (the workflow's form), a frame the result shows but no file is given for is named:
    one error line from the CLI, exit status 2."""
    predictions = sorted(evaluated["predictions"].glob("*_0.bin"))
    inputs = dict(evaluated, predictions=predictions[0])
    failed = run_script("report.py", *figures_args(inputs, tmp_path / "report"), check=False)
    assert failed.returncode == 2 and "error: " in failed.stderr and "no prediction of frame" in failed.stderr


def test_matrix_cli_draws_the_cells_with_missing_figures(tmp_path):
    row = {"aacc": 96.2, "num_images": 500, "end_to_end_images_per_s": 0.7, "model": "deeplabv3"}
    matrix = {
        "reference": "pytorch-fp32",
        "note": "",
        "rows": [
            dict(
                row, variant="pytorch-fp32", miou=79.09, delta_miou=0.0, pixel_agreement=1.0, compute_images_per_s=0.8
            ),
            dict(
                row,
                variant="onnxruntime-fp32",
                miou=79.08,
                delta_miou=-0.01,
                pixel_agreement=0.9999,
                compute_images_per_s=1.9,
            ),
            dict(
                row,
                variant="onnxruntime-int8",
                miou=70.0,
                delta_miou=-9.09,
                pixel_agreement=0.9,
                compute_images_per_s=3.0,
                gate="fail",
                classes_dropped_most="wall -8.50, road -1.00",
            ),
            dict(
                row,
                variant="openvino-int8",
                miou=None,
                delta_miou=None,
                pixel_agreement=None,
                compute_images_per_s=None,
            ),
        ],
    }
    (tmp_path / "matrix.json").write_text(json.dumps(matrix))
    output = tmp_path / "report" / "matrix.png"
    assert plots.plot_matrix(json.loads((tmp_path / "matrix.json").read_text()), output) == output
    image = assert_readable_figure(output, min_width=1200)
    # the cell that fails its gate is drawn red (matplotlib's tab:red, BGR here); none is when all pass
    assert pixels_of(image, TAB_RED) > 500
    matrix["rows"][2]["gate"] = "pass"
    passing = plots.plot_matrix(matrix, tmp_path / "report" / "passing.png")
    assert pixels_of(read_png(passing), TAB_RED) == 0


# ------------------------------------------------------------------------------------ Snakemake (slow)
