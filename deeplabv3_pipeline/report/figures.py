"""Every figure and table of one result, from its files: ``make_figures`` reads a ``result.json`` of
scripts/evaluate.py, the example frames' images, labels and predictions, and the Snakemake ``benchmark:``
files, then writes per_class_iou.png, confusion_matrix.png, examples.png (the frames of lowest and highest
mIoU: image | ground truth | prediction), runtimes.png (plots.py) and summary.md / summary.html
(summary.py). Every input is read before anything is written. The CLI is scripts/report.py.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from deeplabv3_pipeline.data.cityscapes import (
    IMAGE_SUFFIX,
    TRAIN_IDS_SUFFIX,
    frame_files,
)
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import read_bin, write_json, write_text
from deeplabv3_pipeline.report.plots import plot_confusion_matrix, plot_examples, plot_per_class_iou, plot_runtimes
from deeplabv3_pipeline.report.stamp import STAMP_FILE, result_stamp
from deeplabv3_pipeline.report.summary import summary_html, summary_markdown, summary_title

LOG = logging.getLogger("report")


PREDICTION_SUFFIX = "_leftImg8bit_0.bin"


def load_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise UserError(f"{what} {path} does not exist") from error
    except json.JSONDecodeError as error:
        raise UserError(f"{what} {path} is not valid JSON: {error}") from error


def pick_examples(per_image: Mapping[str, Mapping], count: int) -> list[tuple[str, str]]:
    """(frame id, 'lowest' | 'highest') for the ``count`` frames of lowest and highest per-image mIoU.

    Half (rounded up) are the lowest, the rest the highest, ordered from lowest to highest mIoU;
    frames whose mIoU is None (no labelled pixel) are not candidates.
    """
    ranked = sorted((metrics["mIoU"], frame) for frame, metrics in per_image.items() if metrics.get("mIoU") is not None)
    if count <= 0 or not ranked:
        return []
    if len(ranked) <= count:
        half = math.ceil(len(ranked) / 2)
        return [(frame, "lowest" if index < half else "highest") for index, (_, frame) in enumerate(ranked)]
    lowest = ranked[: math.ceil(count / 2)]
    highest = ranked[len(ranked) - count // 2 :]
    return [(frame, "lowest") for _, frame in lowest] + [(frame, "highest") for _, frame in highest]


def frame_file(files: Mapping[str, Path], frame: str, what: str) -> Path:
    if frame not in files:
        raise UserError(f"no {what} of frame {frame} among the files given")
    return files[frame]


def read_example(
    frame: str, images: Mapping[str, Path], labels: Mapping[str, Path], predictions: Mapping[str, Path]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB image, trainIds label, predicted trainIds) of one frame."""
    image_path = frame_file(images, frame, "image")
    label_path = frame_file(labels, frame, "trainIds label")
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"image {image_path} is corrupt")
    if label is None or label.ndim != 2:
        raise UserError(f"label {label_path} is corrupt or not a single-channel trainIds PNG")
    prediction_path = frame_file(predictions, frame, "prediction")
    prediction = read_bin(prediction_path, np.int64, (1, 1, *label.shape))[0, 0]
    return image[:, :, ::-1], label, prediction


def benchmark_label(path: Path, root: Path) -> str:
    """results/benchmarks/infer/onnxruntime/shard0.tsv -> infer/onnxruntime/shard0 (relative to ``root``)."""
    try:
        return str(path.relative_to(root).with_suffix(""))
    except ValueError:
        return str(path.with_suffix(""))


def read_benchmarks(paths: Sequence[Path]) -> list[tuple[str, float, float]]:
    """(job label, wall-clock seconds, peak RSS MB) per Snakemake benchmark TSV (mean over repeats)."""
    paths = [Path(path) for path in paths]
    if not paths:
        return []
    root = Path(os.path.commonpath([str(path.parent) for path in paths]))
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
        if not records or "s" not in records[0]:
            raise UserError(f"{path} is not a Snakemake benchmark file (no column 's')")
        rows.append(
            (benchmark_label(path, root), mean_of(records, "s"), mean_of(records, "max_rss")),
        )
    return rows


def mean_of(records: Sequence[Mapping[str, str]], column: str) -> float:
    """Mean of a benchmark column; NaN where it is missing or 'NA'."""
    values = []
    for record in records:
        try:
            values.append(float(record.get(column, "nan")))
        except ValueError:
            values.append(float("nan"))
    return float(np.mean(values)) if values else float("nan")


def make_figures(
    result_path: Path,
    images: Sequence[Path],
    labels: Sequence[Path],
    predictions: Sequence[Path],
    benchmark_files: Sequence[Path],
    outdir: Path,
    examples: int = 4,
) -> list[Path]:
    """Every figure and table of one result (``examples`` frames in examples.png: half lowest, half
    highest mIoU); every input is read before any figure is written, so a missing file writes none."""
    result = load_json(result_path, "result file")
    for key in ("per_class", "confusion_matrix", "per_image"):
        if key not in result:
            raise UserError(f"{result_path} has no '{key}': is it a result.json of scripts/evaluate.py?")
    frames = pick_examples(result["per_image"], examples)
    if not frames:
        raise UserError(f"{result_path} has no per_image entry with an mIoU: no frame to show in examples.png")
    image_files = frame_files(images, IMAGE_SUFFIX, "image")
    label_files = frame_files(labels, TRAIN_IDS_SUFFIX, "trainIds label")
    prediction_files = frame_files(predictions, PREDICTION_SUFFIX, "prediction")
    shown = [read_example(frame, image_files, label_files, prediction_files) for frame, _ in frames]
    benchmarks = read_benchmarks(benchmark_files)
    stamp = result_stamp(result)
    made_for = stamp.sentence() if stamp else ""
    written = [
        plot_per_class_iou(result, outdir / "per_class_iou.png", made_for),
        plot_confusion_matrix(result, outdir / "confusion_matrix.png", made_for),
        plot_examples(result, frames, shown, outdir / "examples.png", made_for),
        plot_runtimes(
            benchmarks,
            outdir / "runtimes.png",
            f"Snakemake benchmark files of the run: {summary_title(result)}",
            made_for,
        ),
    ]
    for name, text in (
        ("summary.md", summary_markdown(result, benchmarks, made_for)),
        ("summary.html", summary_html(result, benchmarks, made_for)),
    ):
        write_text(outdir / name, text)
        written.append(outdir / name)
    # last: a stamp.json beside the figures says they are all there, and what they were made for
    write_json(outdir / STAMP_FILE, stamp.to_json() if stamp else {})
    return [*written, outdir / STAMP_FILE]
