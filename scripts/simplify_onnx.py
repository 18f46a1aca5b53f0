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

import onnx

from deeplabv3_pipeline.errors import UserError, run_cli

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


def simplify(source: Path, destination: Path, input_shape: list[int]) -> None:
    from onnxsim import simplify as onnxsim_simplify

    if not source.is_file():
        raise UserError(f"ONNX model {source} does not exist: run export_onnx first")
    model = onnx.load(str(source))
    input_name = model.graph.input[0].name
    simplified, valid = onnxsim_simplify(model, overwrite_input_shapes={input_name: input_shape})
    if not valid:
        raise UserError(f"onnxsim could not validate the simplified {source}: keep the unsimplified model")
    temporary = destination.with_name(f".{destination.name}.partial")
    onnx.save(simplified, str(temporary))
    temporary.replace(destination)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_model", type=Path)
    parser.add_argument("output_model", type=Path)
    parser.add_argument("--input-shape", "--overwrite-input-shape", type=parse_shape, default=[1, 3, 1024, 2048])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    simplify(args.input_model, args.output_model, args.input_shape)
    nodes = len(onnx.load(str(args.output_model)).graph.node)
    LOG.info("simplified %s -> %s (%d nodes)", args.input_model, args.output_model, nodes)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
