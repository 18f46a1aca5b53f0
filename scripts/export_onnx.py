#!/usr/bin/env python3
"""mmseg checkpoint + config -> ONNX, as mmseg's tools/pytorch2onnx.py did for the guide.

    python scripts/export_onnx.py deeplabv3_r50-d8_512x1024_40k_cityscapes \\
        --checkpoint deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth \\
        --output-file deeplabv3.onnx --shape 1024 2048 --verify

Input ``input`` float32 (1,3,H,W); output ``output`` int64 class ids (1,1,H,W): in the config's test
mode (``--test-mode``, ``--crop-size``, ``--stride`` replace it): 'whole', logits at 1/8, bilinear resize
(align_corners=False) to H,W, argmax; or 'slide', mmseg's crops unrolled in the graph, their logits
averaged where they overlap, argmax (deeplabv3_pipeline/model/inference_mode.py). ``--verify`` runs ONNX
Runtime and PyTorch on one random input and fails if their class ids disagree (the workflow runs
that check as its own step, scripts/verify_onnx.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.model.export import check_agreement, disagreement, export_onnx
from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions
from deeplabv3_pipeline.model.mmseg_model import export_model_of
from deeplabv3_pipeline.options import add_option_arguments

LOG = logging.getLogger("export_onnx")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="mmseg config file, or a config name mmsegmentation ships (1.x or 0.x name)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--output-file", type=Path, required=True)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    parser.add_argument("--opset-version", "--opset", type=int, default=11)
    parser.add_argument("--verify", action="store_true", help="compare ONNX Runtime with PyTorch after export")
    parser.add_argument(
        "--verify-tolerance",
        type=float,
        default=1e-4,
        help="largest fraction of pixels allowed to differ in --verify (near-ties may flip)",
    )
    add_option_arguments(parser, InferenceModeOptions, "the test mode")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = export_model_of(args)
    export_onnx(model, args.output_file, args.opset_version)
    LOG.info(
        "exported %s (opset %d, input 1x3x%dx%d, %s)",
        args.output_file,
        args.opset_version,
        *args.shape,
        model.mode.describe(),
    )
    if args.verify:  # by hand; the workflow verifies in its own step (scripts/verify_onnx.py)
        found = disagreement(model, args.output_file)
        LOG.info("verify: %.6f%% of pixels differ between ONNX Runtime and PyTorch", found.differing * 100)
        try:
            check_agreement(found, args.verify_tolerance, args.output_file)
        except UserError as error:
            args.output_file.unlink()
            raise UserError(f"{error}; {args.output_file} was removed") from error
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
