"""Timing one benchmark variant (a backend at a precision on one model file) in the calling process:
load, warm-up, timed passes, peak memory and operation counts. scripts/benchmark_variant.py is its
CLI (one variant per job, so that no two share the cores or the memory); deeplabv3_pipeline/benchmark/speed.py
gathers the variants into the benchmark table.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.backends.base import ImageBackend
from deeplabv3_pipeline.backends.files import check_prediction
from deeplabv3_pipeline.io.binio import read_bin
from deeplabv3_pipeline.model.opcount import count_operations

LOG = logging.getLogger("variant_timing")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB (VmHWM of /proc/self/status; None where there is none).

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a job would report its parent's peak.
    """
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return None


def is_winograd(model: Path) -> bool:
    """The workflow names its Winograd graphs ``*_winograd.onnx`` (scripts/winograd_onnx.py)."""
    return model.name.endswith("_winograd.onnx")


def time_calls(
    backend: ImageBackend, images: Sequence[np.ndarray], warmup: int, repeats: int
) -> tuple[list[float], list[np.ndarray]]:
    """``warmup`` untimed calls on the first image, then ``repeats`` timed passes over all images.

    Returns every call's seconds (pass after pass) and the first pass's predictions.
    """
    for _ in range(warmup):
        backend.run(images[0])
    times: list[float] = []
    predictions: list[np.ndarray] = []
    for repeat in range(repeats):
        for image in images:
            start = time.perf_counter()
            prediction = backend.run(image)
            times.append(time.perf_counter() - start)
            if repeat == 0:
                predictions.append(prediction)
    return times, predictions


def class_id_stack(predictions: Sequence[np.ndarray], shape: tuple[int, int], source: str) -> np.ndarray:
    """The (1,1,H,W) predictions as one uint8 (N,H,W) array; anything else (a wrong shape, an id that is
    not a Cityscapes class) is an error, not a silently wrapped uint8."""
    for prediction in predictions:
        check_prediction(prediction, shape, source)
    return np.stack([prediction.reshape(shape) for prediction in predictions]).astype(np.uint8)


def cell_consistency(timed: np.ndarray, cell: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    """MLPerf TEST01's check: the class ids the timed pass computed (uint8 (N,H,W)) against the cell's own
    predictions of the same frames (int64 (1,1,H,W) each, in the same order; ``names`` their files).
    Equal pixel for pixel, unless the timed path computes something else than the cell."""
    pairs = zip(timed, cell, strict=True)
    differing = [int(np.count_nonzero(ids != prediction.reshape(ids.shape))) for ids, prediction in pairs]
    return {
        "frames": len(cell),
        "pixels": int(sum(prediction.size for prediction in cell)),
        "differing_pixels": sum(differing),
        "differing_frames": [name for name, count in zip(names, differing, strict=True) if count],
        "equal": not any(differing),
    }


def executed_operations(model: Path, count_model: Path, reference_total: int) -> int:
    """Operations the variant's own graph does: counted where it is an ONNX file other than the reference
    (a Winograd graph does fewer); the reference count otherwise (a checkpoint, an OpenVINO IR)."""
    if model.suffix != ".onnx" or model.resolve() == count_model.resolve():
        return reference_total
    return count_operations(model)["total"]


def time_variant(
    backend: ImageBackend,
    load_s: float,
    bins: Sequence[Path],
    model: Path,
    count_model: Path,
    warmup: int,
    repeats: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Time an opened ``backend`` (loaded in ``load_s``) over ``bins``: the record of
    results/benchmark/<model>/<variant>.json (without the run's own settings) and the first pass's
    class ids as uint8 (N, H, W)."""
    height, width = backend.input_shape
    images = [read_bin(path, np.float32, (1, 3, height, width)) for path in bins]
    times, predictions = time_calls(backend, images, warmup, repeats)
    peak_mb = peak_rss_mb()  # before the operation count: its graph copy is not the variant's memory
    class_ids = class_id_stack(predictions, (height, width), f"{backend.name} on {model}")
    operations = count_operations(count_model)["total"]
    median_s = statistics.median(times)
    record = {
        "winograd": is_winograd(model),
        "model": str(model),
        "inference_precision": backend.inference_precision,
        "precision_evidence": backend.precision_evidence,
        "images": [str(path) for path in bins],
        "input_shape": [height, width],
        "load_s": load_s,
        "times_s": times,
        "median_s": median_s,
        "images_per_s": 1.0 / median_s,
        "peak_rss_mb": peak_mb,
        "operations_per_image": operations,
        "executed_operations_per_image": executed_operations(model, count_model, operations),
    }
    LOG.info(
        "median %.4f s/image (%.2f images/s), %.1f GOP/s, peak RSS %s MB",
        median_s,
        record["images_per_s"],
        operations / median_s / 1e9,
        f"{peak_mb:.0f}" if peak_mb is not None else "?",
    )
    return record, class_ids
