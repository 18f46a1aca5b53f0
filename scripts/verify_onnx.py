#!/usr/bin/env python3
"""Check an exported ONNX model against PyTorch (the workflow's verify_onnx step; config model.verify).

    python scripts/verify_onnx.py results/models/deeplabv3/deeplabv3.onnx deeplabv3_r50-d8_512x1024_40k_cityscapes \\
        --checkpoint checkpoint.pth --shape 1024 2048 --tolerance 0.0001 \\
        --record results/models/deeplabv3/deeplabv3_verify.json

Runs ONNX Runtime and PyTorch on one random input and fails if more than ``--tolerance`` of the
pixels get another class where PyTorch's two best logits are not a near-tie (float rounding may flip
those: deeplabv3_pipeline/model/export.py, NEAR_TIE_MARGIN). Writes the record (the fraction, the tolerance, what
was compared) only when the check passes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.io.binio import file_sha256, write_json
from deeplabv3_pipeline.model.export import check_agreement, disagreement
from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions
from deeplabv3_pipeline.model.mmseg_model import export_model_of
from deeplabv3_pipeline.options import add_option_arguments

LOG = logging.getLogger("verify_onnx")
SEED = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the exported ONNX model")
    parser.add_argument("config", help="mmseg config file or name (as for export_onnx.py)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest fraction of pixels allowed to differ")
    parser.add_argument("--record", type=Path, required=True, help="JSON written when the check passes")
    add_option_arguments(parser, InferenceModeOptions, "the test mode")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = export_model_of(args)
    found = disagreement(model, args.model, seed=SEED)
    LOG.info(
        "%.6f%% of pixels differ between ONNX Runtime and PyTorch (%.6f%% not near-ties; %.4f%% near-ties)",
        found.differing * 100,
        found.decisive_differing * 100,
        found.near_ties * 100,
    )
    check_agreement(found, args.tolerance, args.model)
    record = {
        "model": str(args.model),
        "model_sha256": file_sha256(args.model),
        "config": args.config,
        "checkpoint": str(args.checkpoint),
        "input_shape": list(args.shape),
        "test_mode": model.mode.describe(),
        "input": f"standard normal, seed {SEED}",
        "differing_pixels": found.differing,
        "differing_decisive_pixels": found.decisive_differing,
        "near_tie_pixels": found.near_ties,
        "tolerance": args.tolerance,
    }
    write_json(args.record, record)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
