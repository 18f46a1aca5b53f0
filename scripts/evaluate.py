#!/usr/bin/env python3
"""Predictions + Cityscapes trainIds labels -> mIoU, as the guide's deeplabv3_torch_postprocess.py.

    python scripts/evaluate.py --output_path result/bs1 --gt_path /data/cityscapes/gtFine/val \\
        --result_path result --out_suffix _leftImg8bit_0.bin

Predictions are ``*{out_suffix}`` files (raw int64 1x1xHxW) found recursively under
``--output_path``, so a real ais_bench output folder works as it is (its summary json files are
not predictions and are ignored). Labels are ``*_gtFine_labelTrainIds.png`` found recursively
under the ``--gt_path`` folders. ``--predictions``/``--labels`` take exact files instead (what the
workflow passes: nothing else is read, whatever else the folders hold). The metric is
mmsegmentation's: intersection and union per class summed over the set, 255 ignored,
mIoU = nanmean(IoU) * 100. Writes ``<result_path>.json``
(everything) and ``<result_path>.txt`` (the guide's ``aAcc: x`` / ``mIoU: y``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from deeplabv3_pipeline.binio import file_sha256, read_bin, write_json, write_text
from deeplabv3_pipeline.cityscapes import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    TRAIN_IDS_SUFFIX,
    frame_files,
)
from deeplabv3_pipeline.errors import UserError, recompute_hint, run_cli
from deeplabv3_pipeline.headline import headline
from deeplabv3_pipeline.metrics import confusion_matrix, summarize
from deeplabv3_pipeline.progress import progress
from deeplabv3_pipeline.provenance import code_version, file_sizes

LOG = logging.getLogger("evaluate")


def pair_predictions_with_labels(predictions: dict[str, Path], labels: dict[str, Path]) -> list[tuple[str, Path, Path]]:
    """Match by frame id; a prediction without a label, or the reverse, is an error naming both sides."""
    unlabelled = sorted(set(predictions) - set(labels))
    if unlabelled:
        example = predictions[unlabelled[0]]
        raise UserError(
            f"{len(unlabelled)} predictions have no label, e.g. {example} has no {unlabelled[0]}{TRAIN_IDS_SUFFIX} "
            "under --gt_path (make them with scripts/make_labels.py)"
        )
    unpredicted = sorted(set(labels) - set(predictions))
    if unpredicted:
        example = labels[unpredicted[0]]
        raise UserError(
            f"{len(unpredicted)} labels have no prediction, e.g. {example} has no {unpredicted[0]}<out_suffix> "
            "under --output_path: did inference finish? Is --out_suffix right?"
        )
    return [(key, predictions[key], labels[key]) for key in sorted(predictions)]


def read_label(path: Path) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise UserError(f"label {path} is corrupt or not a single-channel trainIds PNG")
    return label


def check_label_shape(label: np.ndarray, path: Path, shape: tuple[int, int] | None, prediction: Path) -> None:
    """A label of another size than the images is the label's fault, not the prediction's: blame it. Without
    ``shape`` (the images' HxW) the prediction's pixel count is what the label must match."""
    if shape is not None and label.shape != tuple(shape):
        raise UserError(
            f"label {path} is {label.shape[0]}x{label.shape[1]} (HxW) but the images are {shape[0]}x{shape[1]} "
            "(model.input_shape): "
            + (recompute_hint(path) if path.parts[:1] == ("results",) else "it is not this frame's label; replace it")
        )
    pixels = prediction.stat().st_size // np.dtype(np.int64).itemsize if prediction.is_file() else None
    if shape is None and pixels is not None and pixels != label.size:
        raise UserError(
            f"label {path} is {label.shape[0]}x{label.shape[1]} (HxW, {label.size:,} pixels) but prediction "
            f"{prediction} holds {pixels:,} pixels: one of them is of another size than its image"
        )


def evaluate_pairs(
    pairs: list[tuple[str, Path, Path]], shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, dict[str, dict]]:
    """The set's confusion matrix, and each image's own aAcc/mIoU (for finding the best and worst)."""
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    per_image: dict[str, dict] = {}
    for key, prediction_path, label_path in progress(pairs, len(pairs), "evaluate"):
        label = read_label(label_path)
        check_label_shape(label, label_path, shape, prediction_path)
        prediction = read_bin(prediction_path, np.int64, (1, 1, *label.shape))[0, 0]
        try:
            matrix = confusion_matrix(prediction, label, NUM_CLASSES, IGNORE_INDEX)
        except UserError as error:
            raise UserError(f"{prediction_path} / {label_path}: {error}") from error
        total += matrix
        image_metrics = summarize(matrix, CLASS_NAMES)
        per_image[key] = {"aAcc": image_metrics["aAcc"], "mIoU": image_metrics["mIoU"]}
    return total, per_image


def throughput_figures(summary: dict) -> dict:
    """The speed figures of an inference summary worth keeping beside the accuracy."""
    return {
        "compute_images_per_s": summary.get("throughput"),
        "compute_ms": summary.get("compute_time"),
        "end_to_end_images_per_s": summary.get("end_to_end", {}).get("images_per_s"),
        "end_to_end_wall_s": summary.get("end_to_end", {}).get("wall_s"),
        # an accelerator's figures where the backend records them (TensorRT: GPU, memory, copy times)
        **{key: summary[key] for key in ("gpu", "h2d_ms", "d2h_ms", "per_shard") if key in summary},
    }


def file_hashes(paths: Sequence[Path | None]) -> list[str | None]:
    """sha256 of each file (None for None), each distinct file read once: the pytorch backend's model
    file is the checkpoint, and models are hundreds of MB."""
    hashes = {path: file_sha256(path) for path in set(paths) if path is not None}
    return [hashes.get(path) for path in paths]


def result_paths(result_path: Path) -> tuple[Path, Path]:
    """``result`` or ``result.json`` -> (``result.json``, ``result.txt``)."""
    base = result_path.with_suffix("") if result_path.suffix in (".json", ".txt") else result_path
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".txt")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    predictions = parser.add_mutually_exclusive_group(required=True)
    predictions.add_argument("--output_path", type=Path, help="folder of predictions (searched recursively)")
    predictions.add_argument("--predictions", type=Path, nargs="+", help="prediction files")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--gt_path", type=Path, nargs="+", help="folder(s) of *_gtFine_labelTrainIds.png")
    labels.add_argument("--labels", type=Path, nargs="+", help="trainIds label files")
    parser.add_argument("--result_path", type=Path, default=Path("result"), help="writes <result_path>.json and .txt")
    parser.add_argument("--out_suffix", default="_leftImg8bit_0.bin")
    parser.add_argument(
        "--shape", type=int, nargs=2, metavar=("H", "W"), help="the images' size: a label of another is an error"
    )
    parser.add_argument("--summary", type=Path, help="inference summary json, for the speed figures")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--model-name", default=None, help="the model's name (model.name): the cell's model")
    parser.add_argument("--variant", default=None, help="backend-precision[-winograd]: the cell's variant")
    parser.add_argument("--model-file", type=Path, help="model that made the predictions, for its sha256")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint the model was made from, for its sha256")
    parser.add_argument("--dataset", help="what the frames are (dataset root, split, ...), as JSON")
    parser.add_argument("--run-config", default=None, help="the workflow config used, as JSON")
    parser.add_argument("--synthetic", default=None, help="say what is synthetic (demo data or checkpoint)")
    parser.add_argument(
        "--model-report",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="JSON reports of the steps that made the model, recorded under KEY: quantization (int8 settings, "
        "calibration, agreement), winograd (rewritten sites, agreement), fp16 (the fp16 conversion), "
        "engine (TensorRT build settings)",
    )
    return parser.parse_args(argv)


MODEL_REPORT_KEYS = ("quantization", "winograd", "fp16", "engine")


def read_model_reports(entries: Sequence[str]) -> dict[str, object]:
    """``KEY=JSON`` entries -> {key: parsed JSON}, every key of MODEL_REPORT_KEYS present (None: no such step)."""
    reports: dict[str, object] = dict.fromkeys(MODEL_REPORT_KEYS)
    for entry in entries:
        key, _, path = entry.partition("=")
        if key not in MODEL_REPORT_KEYS or not path:
            raise UserError(
                f"--model-report {entry!r}: expected KEY=JSON with KEY one of {', '.join(MODEL_REPORT_KEYS)}"
            )
        try:
            reports[key] = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"model report {path} is unreadable ({error}): {recompute_hint(path)}") from error
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    predictions = frame_files(args.predictions or [args.output_path], args.out_suffix, "prediction")
    labels = frame_files(args.labels or args.gt_path, TRAIN_IDS_SUFFIX, "label")
    pairs = pair_predictions_with_labels(predictions, labels)
    confusion, per_image = evaluate_pairs(pairs, tuple(args.shape) if args.shape else None)
    metrics = summarize(confusion, CLASS_NAMES)
    summary = json.loads(args.summary.read_text()) if args.summary else {}
    model_sha256, checkpoint_sha256 = file_hashes([args.model_file, args.checkpoint])
    result = {
        "aAcc": metrics["aAcc"],
        "mIoU": metrics["mIoU"],
        "mAcc": metrics["mAcc"],
        "num_images": len(per_image),
        "model": args.model_name,
        "variant": args.variant,
        "backend": args.backend,
        "inference_precision": summary.get("inference_precision"),
        "precision_evidence": summary.get("precision_evidence"),
        "dataset": json.loads(args.dataset) if args.dataset else None,
        "per_class": metrics["per_class"],
        "confusion_matrix": {"rows": "label trainId", "columns": "predicted trainId", "counts": confusion.tolist()},
        "per_image": per_image,
        "model_file": str(args.model_file) if args.model_file else None,
        "model_sha256": model_sha256,
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "checkpoint_sha256": checkpoint_sha256,
        "predictions": {key: str(prediction) for key, prediction, _ in pairs},
        "labels": {key: str(label) for key, _, label in pairs},
        # the size of every file read: a later run tells a missing or replaced one (provenance.stale_files)
        "files": file_sizes(
            [
                *(prediction for _, prediction, _ in pairs),
                *(label for _, _, label in pairs),
                args.summary,
                args.model_file,
                args.checkpoint,
            ]
        ),
        "code": code_version(),
        "throughput": throughput_figures(summary) if summary else None,
        "synthetic_inputs": args.synthetic,
        **read_model_reports(args.model_report),
        "config": json.loads(args.run_config) if args.run_config else None,
    }
    json_path, text_path = result_paths(args.result_path)
    write_json(json_path, result)
    write_text(text_path, f"aAcc: {result['aAcc']}\nmIoU: {result['mIoU']}\n")
    print(headline(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
