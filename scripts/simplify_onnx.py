#!/usr/bin/env python3
"""ONNX -> simplified ONNX with onnxsim, as the guide's ``python3 -m onnxsim`` step.

    python scripts/simplify_onnx.py deeplabv3.onnx deeplabv3_sim_bs1.onnx --input-shape 1,3,1024,2048

The guide used onnx-simplifier 0.3.6 flags (``--input-shape``, ``--dynamic-input-shape``);
since 0.4 the shape is ``overwrite_input_shapes`` and the batch stays fixed (bs1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.model.simplify import simplify_onnx

LOG = logging.getLogger("simplify_onnx")


def parse_shape(text: str) -> list[int]:
    """``"1,3,1024,2048"`` -> ``[1, 3, 1024, 2048]``."""
    try:
        shape = [int(size) for size in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not N,C,H,W") from error
    if len(shape) != 4:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not N,C,H,W")
    return shape


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_model", type=Path)
    parser.add_argument("output_model", type=Path)
    parser.add_argument("--input-shape", "--overwrite-input-shape", type=parse_shape, default=[1, 3, 1024, 2048])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nodes = simplify_onnx(args.input_model, args.output_model, args.input_shape)
    LOG.info("simplified %s -> %s (%d nodes)", args.input_model, args.output_model, nodes)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
