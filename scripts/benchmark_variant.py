#!/usr/bin/env python3
"""Time ONE benchmark variant (a backend at a precision on one model file) in its own process.

    python scripts/benchmark_variant.py --variant openvino-int8 --backend openvino --precision int8 \\
        --model results/models/deeplabv3_sim_bs1_int8_ov.xml --bins results/prep_dataset/.../a.bin ... \\
        --count-model results/models/deeplabv3/deeplabv3_sim_bs1.onnx --repeats 3 --warmup 1 --threads 8 \\
        --output results/benchmark/openvino-int8.json --predictions results/benchmark/openvino-int8.npy

The model is loaded (timed: ``load_s``) and must run the precision asked for (as infer.py checks);
``--warmup`` untimed calls on the first image, then ``--repeats`` passes over every image, each call
timed with perf_counter. The first pass's class ids go to ``--predictions`` (uint8 (N, H, W)) for the
gathering step's agreement figures; the JSON holds the times, the median, the peak RSS of this process
and the operation counts: ``operations_per_image`` of ``--count-model`` (the reference fp32 graph: the
same work for every variant, so rates compare) and ``executed_operations_per_image``, the variant's own
graph where it is an ONNX file (a Winograd model does fewer). No figure is judged here.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.backends import (
    IN_PROCESS_BACKENDS,
    Backend,
    add_backend_arguments,
    check_precision,
    default_precision,
    open_checked,
)
from deeplabv3_pipeline.backends.files import check_prediction
from deeplabv3_pipeline.binio import list_bins, read_bin, write_json, write_npy
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.opcount import count_operations

LOG = logging.getLogger("benchmark_variant")


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
    backend: Backend, images: Sequence[np.ndarray], warmup: int, repeats: int
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


def executed_operations(model: Path, count_model: Path, reference_total: int) -> int:
    """Operations the variant's own graph does: counted where it is an ONNX file other than the reference
    (a Winograd graph does fewer); the reference count otherwise (a checkpoint, an OpenVINO IR)."""
    if model.suffix != ".onnx" or model.resolve() == count_model.resolve():
        return reference_total
    return count_operations(model)["total"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="the variant's name, as the workflow lists it")
    parser.add_argument("--model", type=Path, required=True, help=".onnx, OpenVINO .xml, .pth (pytorch), .engine")
    parser.add_argument("--bins", type=Path, nargs="+", required=True, help="preprocessed .bin files (or folders)")
    parser.add_argument(
        "--count-model", type=Path, required=True, help="the fp32 simplified ONNX whose operations are counted"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    add_backend_arguments(parser, IN_PROCESS_BACKENDS, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the variant's JSON")
    parser.add_argument("--predictions", type=Path, required=True, help="the first pass's class ids, uint8 .npy")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse what would fail late (after the model load and the timing) or give meaningless figures."""
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: time at least one pass")
    if args.warmup < 0 or args.threads < 0:
        raise UserError("--warmup and --threads cannot be negative (--threads 0: the runtime's default)")
    check_precision(args.backend, args.precision)
    if not args.count_model.is_file():
        raise UserError(f"count model {args.count_model} does not exist: run the workflow's export rules first")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.precision = args.precision or default_precision(args.backend)
    check_args(args)
    bins = list_bins(args.bins)
    start = time.perf_counter()
    backend = open_checked(args)  # the precision check is part of the load: cheap next to it
    load_s = time.perf_counter() - start
    height, width = backend.input_shape
    images = [read_bin(path, np.float32, (1, 3, height, width)) for path in bins]
    LOG.info("timing %s: %d images x %d repeats at %s", args.variant, len(images), args.repeats, args.precision)
    times, predictions = time_calls(backend, images, args.warmup, args.repeats)
    peak_mb = peak_rss_mb()  # before the operation count: its graph copy is not the variant's memory
    class_ids = class_id_stack(predictions, (height, width), f"{args.backend} on {args.model}")
    operations = count_operations(args.count_model)["total"]
    median_s = statistics.median(times)
    result = {
        "variant": args.variant,
        "backend": args.backend,
        "precision": args.precision,
        "winograd": is_winograd(args.model),
        "model": str(args.model),
        "inference_precision": backend.inference_precision,
        "precision_evidence": backend.precision_evidence,
        "images": [str(path) for path in bins],
        "input_shape": [height, width],
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "load_s": load_s,
        "times_s": times,
        "median_s": median_s,
        "images_per_s": 1.0 / median_s,
        "peak_rss_mb": peak_mb,
        "operations_per_image": operations,
        "executed_operations_per_image": executed_operations(args.model, args.count_model, operations),
        "predictions": str(args.predictions),
    }
    write_npy(args.predictions, class_ids)
    write_json(args.output, result)  # last: a JSON present means the predictions are too
    LOG.info(
        "%s: median %.4f s/image (%.2f images/s), %.1f GOP/s, peak RSS %s MB",
        args.variant,
        median_s,
        result["images_per_s"],
        operations / median_s / 1e9,
        f"{peak_mb:.0f}" if peak_mb is not None else "?",
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
