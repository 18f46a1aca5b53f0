#!/usr/bin/env python3
"""mmseg checkpoint + config -> ONNX, as mmseg's tools/pytorch2onnx.py did for the guide.

    python scripts/export_onnx.py deeplabv3_r50-d8_512x1024_40k_cityscapes \\
        --checkpoint deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth \\
        --output-file deeplabv3.onnx --shape 1024 2048 --verify

Input ``input`` float32 (1,3,H,W); output ``output`` int64 class ids (1,1,H,W): logits at 1/8,
bilinear resize (align_corners=False) to H,W, argmax ('whole' mode). ``--verify`` runs ONNX
Runtime and PyTorch on one random input and fails if their class ids disagree.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.mmseg_model import SegmentationExport, load_export_model, predict_class_ids

LOG = logging.getLogger("export_onnx")


def export(model: SegmentationExport, output: Path, opset: int) -> None:
    """Trace ``model`` to ONNX with a fixed input shape (TorchScript exporter: dynamo=False)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.partial")
    example = torch.zeros(1, 3, *model.input_shape)
    with torch.inference_mode():
        torch.onnx.export(
            model,
            (example,),
            str(temporary),
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    temporary.replace(output)


def disagreement(model: SegmentationExport, onnx_file: Path, seed: int = 0) -> float:
    """Fraction of pixels whose class differs between PyTorch and ONNX Runtime on a random input."""
    import onnxruntime as ort

    image = np.random.default_rng(seed).standard_normal((1, 3, *model.input_shape), dtype=np.float32)
    reference = predict_class_ids(model, image)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"input": image})[0]
    if exported.shape != reference.shape or exported.dtype != np.int64:
        raise UserError(f"{onnx_file} gives {exported.dtype} {exported.shape}, expected int64 {reference.shape}")
    return float(np.mean(exported != reference))


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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = load_export_model(args.config, args.checkpoint, tuple(args.shape))
    export(model, args.output_file, args.opset_version)
    LOG.info("exported %s (opset %d, input 1x3x%dx%d)", args.output_file, args.opset_version, *args.shape)
    if args.verify:
        differing = disagreement(model, args.output_file)
        LOG.info("verify: %.6f%% of pixels differ between ONNX Runtime and PyTorch", differing * 100)
        if differing > args.verify_tolerance:
            args.output_file.unlink()
            raise UserError(
                f"ONNX Runtime and PyTorch disagree on {differing:.4%} of pixels (tolerance "
                f"{args.verify_tolerance:.4%}): the export is wrong; {args.output_file} was removed"
            )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
