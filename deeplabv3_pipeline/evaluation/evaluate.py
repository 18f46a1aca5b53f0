"""Evaluation: predictions + Cityscapes trainIds labels -> mIoU, and the record result.json holds.

mmsegmentation's metric: intersection and union per class summed over the set, 255 ignored,
mIoU = nanmean(IoU) * 100 (deeplabv3_pipeline/evaluation/metrics.py). :func:`result_record` is the one
definition of result.json's fields; scripts/evaluate.py is its CLI, and the matrix, the report and
the gate read what it writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, TRAIN_IDS_SUFFIX
from deeplabv3_pipeline.errors import UserError, recompute_hint
from deeplabv3_pipeline.evaluation.metrics import confusion_matrix, summarize
from deeplabv3_pipeline.evaluation.provenance import code_version, file_sizes
from deeplabv3_pipeline.io.binio import file_sha256, read_bin
from deeplabv3_pipeline.io.progress import progress


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
        # an accelerator's figures where the backend records them (TensorRT, PyTorch on CUDA: the GPU, its
        # memory, the copy times; PyTorch: its versions and torch.compile's time, apart from the images')
        **{
            key: summary[key]
            for key in ("gpu", "h2d_ms", "d2h_ms", "versions", "compile_s", "per_shard")
            if key in summary
        },
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


MODEL_RECORD_KEYS = ("quantization", "winograd", "fp16", "engine")


def read_model_records(entries: Sequence[str]) -> dict[str, object]:
    """``KEY=JSON`` entries -> {key: parsed JSON}, every key of MODEL_RECORD_KEYS present (None: no such step)."""
    records: dict[str, object] = dict.fromkeys(MODEL_RECORD_KEYS)
    for entry in entries:
        key, _, path = entry.partition("=")
        if key not in MODEL_RECORD_KEYS or not path:
            raise UserError(
                f"--model-record {entry!r}: expected KEY=JSON with KEY one of {', '.join(MODEL_RECORD_KEYS)}"
            )
        try:
            records[key] = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"model record {path} is unreadable ({error}): {recompute_hint(path)}") from error
    return records


def result_record(
    pairs: list[tuple[str, Path, Path]],
    shape: tuple[int, int] | None = None,
    *,
    summary_path: Path | None = None,
    model_file: Path | None = None,
    checkpoint: Path | None = None,
    cell: Mapping[str, str | None] | None = None,
    dataset: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    synthetic: str | None = None,
    model_records: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything result.json holds for these (frame, prediction, label) pairs: the metrics, per image
    and per class, what made the predictions (``cell``: model, variant, backend), the files read with
    their sizes, the code version and the config."""
    cell = cell or {}
    confusion, per_image = evaluate_pairs(pairs, shape)
    metrics = summarize(confusion, CLASS_NAMES)
    summary = json.loads(summary_path.read_text()) if summary_path else {}
    model_sha256, checkpoint_sha256 = file_hashes([model_file, checkpoint])
    result = {
        "aAcc": metrics["aAcc"],
        "mIoU": metrics["mIoU"],
        "mAcc": metrics["mAcc"],
        "num_images": len(per_image),
        "model": cell.get("model"),
        "variant": cell.get("variant"),
        "backend": cell.get("backend"),
        "inference_precision": summary.get("inference_precision"),
        "precision_evidence": summary.get("precision_evidence"),
        "dataset": dict(dataset) if dataset else None,
        "per_class": metrics["per_class"],
        "confusion_matrix": {"rows": "label trainId", "columns": "predicted trainId", "counts": confusion.tolist()},
        "per_image": per_image,
        "model_file": str(model_file) if model_file else None,
        "model_sha256": model_sha256,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": checkpoint_sha256,
        "predictions": {key: str(prediction) for key, prediction, _ in pairs},
        "labels": {key: str(label) for key, _, label in pairs},
        # the size of every file read: a later run tells a missing or replaced one (provenance.stale_files)
        "files": file_sizes(
            [
                *(prediction for _, prediction, _ in pairs),
                *(label for _, _, label in pairs),
                summary_path,
                model_file,
                checkpoint,
            ]
        ),
        "code": code_version(),
        "throughput": throughput_figures(summary) if summary else None,
        "synthetic_inputs": synthetic,
        **read_model_records(model_records),
        "config": dict(run_config) if run_config else None,
    }
    return result
