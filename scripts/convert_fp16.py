#!/usr/bin/env python3
"""fp32 ONNX -> fp16 ONNX (float16 weights and activations; input and output types kept), for the
fp16 TensorRT engine: TensorRT 11 computes in the types the model declares.

    python scripts/convert_fp16.py results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        results/models/deeplabv3/deeplabv3_sim_bs1_fp16.onnx \\
        --record results/models/deeplabv3/deeplabv3_sim_bs1_fp16.json

Resize (the logits' final upsampling) stays fp32, as onnxconverter-common keeps it. ``--keep-fp32``
names more nodes to keep fp32 (onnxconverter-common's ``node_block_list``).

With a target (``--target-agreement``, ``--target-miou-drop``) the fewest nodes are kept fp32 for the fp16
model to meet it on ``--check-data`` (run here in ONNX Runtime), searched in the order of the per-layer
comparison (deeplabv3_pipeline/optimize/mixed.py); the record's ``mixed`` holds them (``float_layers``),
the figures reached, the evaluations and the time, and ``--keep-dtype`` writes them as ATC's
``--keep_dtype`` file for Ascend (one node name a line).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.backends.ascend.atc import keep_dtype_text
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json, write_text
from deeplabv3_pipeline.optimize.fp16 import convert_mixed, convert_to_fp16
from deeplabv3_pipeline.optimize.mixed import add_mixed_arguments, mixed_search
from deeplabv3_pipeline.optimize.quantize import calibration_bins, model_input, select_calibration_files
from deeplabv3_pipeline.planning.artifacts import record_path

LOG = logging.getLogger("convert_fp16")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_model", type=Path, help="the simplified fp32 ONNX (deeplabv3_sim_bs1.onnx)")
    parser.add_argument("output_model", type=Path, help="the fp16 ONNX to write")
    parser.add_argument("--record", type=Path, help="what the conversion did, JSON (default: <output stem>.json)")
    parser.add_argument("--keep-fp32", nargs="+", default=[], metavar="NODE", help="node names to keep fp32")
    parser.add_argument("--check-data", type=Path, nargs="+", help="preprocessed .bin files (or folders) to judge on")
    parser.add_argument("--check-images", type=int, default=1, help="how many of --check-data (default 1)")
    parser.add_argument("--keep-dtype", type=Path, help="with a target: write ATC's --keep_dtype file of the nodes")
    add_mixed_arguments(parser, "the search runs in ONNX Runtime over onnxconverter-common's node_block_list")
    args = parser.parse_args(argv)
    args.model = args.input_model  # (the fp32 model the check frames' references come from)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check = select_calibration_files(calibration_bins(args.check_data), args.check_images) if args.check_data else []
    targeted = args.target_agreement is not None or args.target_miou_drop is not None
    shape = model_input(args.input_model)[1] if targeted else (0, 0)
    search = mixed_search(args, check, shape, "onnxruntime")
    if args.keep_dtype and search is None:
        raise UserError("--keep-dtype writes the nodes a mixed-precision search keeps fp32: give a target too")
    if search is None:
        record = convert_to_fp16(args.input_model, args.output_model, args.keep_fp32)
    else:
        if args.keep_fp32:
            raise UserError("--keep-fp32 and a target: the search chooses the nodes; give one or the other")
        record, result = convert_mixed(args.input_model, args.output_model, search)
        record["mixed"] = search.record() | result.record()
        LOG.info(
            "mixed: %d nodes kept fp32 (%s), pixel agreement %.4f; %d models evaluated in %.1f s",
            len(result.float_layers), ", ".join(result.float_layers) or "none", result.figures.pixel_agreement,
            len(result.trials), result.seconds,
        )  # fmt: skip
    if args.keep_dtype:
        write_text(args.keep_dtype, keep_dtype_text(record["kept_fp32_nodes"]))
    write_json(args.record or Path(record_path(str(args.output_model))), record)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
