#!/usr/bin/env python3
"""Time ONE benchmark variant (a backend at a precision on one model file) in its own process.

    python scripts/benchmark_variant.py --variant openvino-int8 --backend openvino --precision int8 \\
        --model results/models/deeplabv3/deeplabv3_sim_bs1_int8_ov.xml --bins results/prep_dataset/.../a.bin ... \\
        --count-model results/models/deeplabv3/deeplabv3_sim_bs1.onnx --repeats 3 --warmup 1 --threads 8 \\
        --output results/benchmark/deeplabv3/openvino-int8.json \\
        --predictions results/benchmark/deeplabv3/openvino-int8.npy

The model is loaded (timed: ``load_s``) and must run the precision asked for (as infer.py checks);
``--warmup`` untimed calls on the first image, then ``--repeats`` passes over every image, each call timed
with perf_counter. The first pass's class ids go to ``--predictions`` (uint8 (N, H, W)) for the gathering
step's agreement figures; with ``--cell-predictions`` (the cell of this model and variant: its
``{stem}_0.bin`` of each image) they must equal the cell's own, pixel for pixel (MLPerf's TEST01: a timed path
that computes something else than the cell is an error, and nothing is written); the JSON holds the times, the
median, the peak RSS of this process and the operation counts: ``operations_per_image`` of ``--count-model``
(the reference fp32 graph: the same work for every variant, so rates compare) and
``executed_operations_per_image``, the variant's own graph where it is an ONNX file (a Winograd model does
fewer). No speed or agreement figure is judged here. The timing is
deeplabv3_pipeline/benchmark/variant_timing.py's.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.backends import (
    IN_PROCESS_BACKENDS,
    add_backend_arguments,
    check_precision,
    default_precision,
    open_checked,
)
from deeplabv3_pipeline.benchmark.variant_timing import cell_consistency, time_variant
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import list_bins, read_bin, write_json, write_npy

LOG = logging.getLogger("benchmark_variant")


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
    add_backend_arguments(parser, IN_PROCESS_BACKENDS)
    parser.add_argument(
        "--cell-predictions", type=Path, nargs="+", help="the cell's prediction of each image, in --bins order"
    )
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


def check_cell_predictions(cell_predictions: list[Path] | None, bins: list[Path]) -> None:
    """The cell's predictions, where given, are one per image, named after it (``{stem}_0.bin``)."""
    if not cell_predictions:
        return
    expected = [f"{path.stem}_0.bin" for path in bins]
    if [path.name for path in cell_predictions] != expected:
        raise UserError(
            f"--cell-predictions must be the cell's prediction of each image in --bins order ({', '.join(expected)})"
        )
    for path in cell_predictions:
        if not path.is_file():
            raise UserError(f"cell prediction {path} does not exist: run the cell's inference first")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.precision = args.precision or default_precision(args.backend)
    check_args(args)
    bins = list_bins(args.bins)
    check_cell_predictions(args.cell_predictions, bins)
    start = time.perf_counter()
    backend = open_checked(args)  # the precision check is part of the load: cheap next to it
    load_s = time.perf_counter() - start
    LOG.info("timing %s: %d images x %d repeats at %s", args.variant, len(bins), args.repeats, args.precision)
    record, class_ids = time_variant(backend, load_s, bins, args.model, args.count_model, args.warmup, args.repeats)
    consistency = None
    if args.cell_predictions:
        shape = class_ids.shape[1:]
        cell = [read_bin(path, np.int64, (1, 1, *shape)) for path in args.cell_predictions]
        consistency = cell_consistency(class_ids, cell, [str(path) for path in args.cell_predictions])
        if not consistency["equal"]:
            raise UserError(
                f"{args.variant}: the timed outputs differ from the cell's own predictions on "
                f"{consistency['differing_pixels']} of {consistency['pixels']} pixels "
                f"({', '.join(consistency['differing_frames'])}): the timed path computes something else than the "
                "cell (MLPerf TEST01); nothing written"
            )
        LOG.info("the timed outputs equal the cell's predictions on %d frames", consistency["frames"])
    result = {
        "variant": args.variant,
        "backend": args.backend,
        "precision": args.precision,
        **record,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "predictions": str(args.predictions),
        "cell_consistency": consistency,
    }
    write_npy(args.predictions, class_ids)
    write_json(args.output, result)  # last: a JSON present means the predictions are too
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
