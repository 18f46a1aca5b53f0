#!/usr/bin/env python3
"""fp32 ONNX -> the same model with its wide 3x3 convolutions in Winograd form (faster on CPUs).

    python scripts/winograd_onnx.py results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        results/models/deeplabv3_sim_bs1_winograd.onnx --tile 4 --check-data results/prep_dataset/demo/val

Every 3x3 stride-1 convolution with at least ``--min-channels`` input channels (dilated ones
included: the ASPP branches and the dilated backbone stages) is replaced by Winograd
F(tile x tile, 3 x 3) written in plain ONNX operators (see deeplabv3_pipeline/optimize/winograd.py):
(tile + 2)^2 / (9 tile^2) of the multiplications, 0.25x for tile 4 and 0.44x for tile 2 before
padding. The model keeps its interface (``input`` float32 1x3xHxW -> ``output`` int64 1x1xHxW).

The result equals the direct model up to float rounding. ``--check-images`` images (default 1)
are run through both models with OpenVINO (``--check-backend``) and the pixel agreement goes to the record JSON
(``<output stem>.json``); below ``--min-agreement`` the output is removed and the run fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.evaluation.agreement import (
    add_agreement_arguments,
    agreement_check,
    check_agreement_arguments,
    enforce_min_agreement,
)
from deeplabv3_pipeline.io.binio import write_json
from deeplabv3_pipeline.optimize.quantize import calibration_bins, model_input, select_calibration_files
from deeplabv3_pipeline.optimize.winograd import ALGORITHMS, MAX_MULTIPLY_RATIO, rewrite_file

LOG = logging.getLogger("winograd_onnx")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="fp32 ONNX model with a fixed input shape (deeplabv3_sim_bs1.onnx)")
    parser.add_argument("output", type=Path, help="the rewritten .onnx")
    parser.add_argument("--tile", type=int, choices=sorted(ALGORITHMS), default=4, help="outputs per tile side")
    parser.add_argument(
        "--min-channels", type=int, default=256, help="rewrite 3x3 convolutions with at least this many inputs"
    )
    add_agreement_arguments(parser, "the direct model", "preprocessed .bin files or folders of them")
    parser.add_argument(
        "--check-backend", choices=("openvino", "onnxruntime"), default="openvino", help="runtime of the check"
    )
    parser.add_argument("--record", type=Path, help="what the rewrite did, JSON (default: <output stem>.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_agreement_arguments(args)
    if args.check_images and not args.check_data:
        raise UserError("--check-data is needed for the agreement check (or pass --check-images 0)")
    sites, left_direct = rewrite_file(args.model, args.output, args.tile, args.min_channels)
    LOG.info("wrote %s: %d convolutions in Winograd F(%d, 3) form", args.output, len(sites), args.tile)
    record: dict = {
        "source": str(args.model),
        "tile": args.tile,
        "min_channels": args.min_channels,
        "max_multiply_ratio": MAX_MULTIPLY_RATIO,
        "sites": sites,
        "left_direct": left_direct,
    }
    if args.check_images:
        files = select_calibration_files(calibration_bins(args.check_data), args.check_images)
        shape = model_input(args.model)[1]
        record["agreement"] = agreement_check(args.model, args.output, args.check_backend, files, shape)
        LOG.info("pixel agreement with the direct model: mean %.6f", record["agreement"]["mean"])
    path = args.record or args.output.with_suffix(".json")
    write_json(path, record)
    enforce_min_agreement(
        record.get("agreement"),
        args.min_agreement,
        [args.output],
        "the Winograd model agrees with the direct one",
        path,
        "Try --tile 2 (smaller rounding error) or run the direct model.",
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
