#!/usr/bin/env python3
"""fp32 ONNX -> fp16 ONNX (float16 weights and activations; input and output types kept), for the
fp16 TensorRT engine: TensorRT 11 computes in the types the model declares.

    python scripts/convert_fp16.py results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        results/models/deeplabv3/deeplabv3_sim_bs1_fp16.onnx \\
        --record results/models/deeplabv3/deeplabv3_sim_bs1_fp16.json

Resize (the logits' final upsampling) stays fp32, as onnxconverter-common keeps it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.io.binio import write_json
from deeplabv3_pipeline.optimize.fp16 import convert_to_fp16
from deeplabv3_pipeline.planning.artifacts import record_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_model", type=Path, help="the simplified fp32 ONNX (deeplabv3_sim_bs1.onnx)")
    parser.add_argument("output_model", type=Path, help="the fp16 ONNX to write")
    parser.add_argument("--record", type=Path, help="what the conversion did, JSON (default: <output stem>.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    record = convert_to_fp16(args.input_model, args.output_model)
    write_json(args.record or Path(record_path(str(args.output_model))), record)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
