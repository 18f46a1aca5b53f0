#!/usr/bin/env python3
"""Figures and a summary table of an evaluation: what a person reads after a run.

    python scripts/report.py figures --result results/cells/demo/val/deeplabv3/onnxruntime-fp32/result.json \\
        --images /data/cityscapes/leftImg8bit/val --labels /data/cityscapes/gtFine/val \\
        --predictions results/infer/demo/val/deeplabv3/onnxruntime-fp32 \\
        --benchmarks $(find results/benchmarks -name '*.tsv') \\
        --outdir results/report/demo/val/deeplabv3/onnxruntime-fp32
    python scripts/report.py matrix --matrix results/matrix.json --output results/report/matrix.png

``figures`` reads a ``result.json`` of scripts/evaluate.py and writes into ``--outdir``:
per_class_iou.png, confusion_matrix.png, examples.png (the frames of lowest and highest
mIoU: image | ground truth | prediction), runtimes.png (Snakemake ``benchmark:`` files) and
summary.md / summary.html (aAcc, mIoU, mAcc and per-class IoU/Acc beside the reference figures),
and stamp.json (what they were made for: deeplabv3_pipeline/report/stamp.py; {} for a result.json that
records no workflow config), the same stamp drawn on each figure and written under each table's title.
``matrix`` draws a ``matrix.json`` of scripts/matrix.py: mIoU delta, pixel agreement and
images/s per cell (model x variant). The reference mIoU lines are drawn only for a run on real inputs.
The figures and tables are deeplabv3_pipeline/report/'s (figures.py reads the inputs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.report.figures import PREDICTION_SUFFIX, load_json, make_figures
from deeplabv3_pipeline.report.plots import plot_matrix


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    figures = commands.add_parser("figures", help="figures and tables of one result.json")
    figures.add_argument("--result", type=Path, required=True, help="result.json of scripts/evaluate.py")
    figures.add_argument(
        "--images",
        type=Path,
        nargs="+",
        required=True,
        help="image files, or folders of <city>/*_leftImg8bit.png (leftImg8bit/<split>)",
    )
    figures.add_argument(
        "--labels", type=Path, nargs="+", required=True, help="trainIds files, or folders of them (searched down)"
    )
    figures.add_argument(
        "--predictions", type=Path, nargs="+", required=True, help=f"*{PREDICTION_SUFFIX} files, or a folder of them"
    )
    figures.add_argument("--benchmarks", type=Path, nargs="*", default=[], help="Snakemake benchmark .tsv files")
    figures.add_argument("--examples", type=int, default=4, help="frames in examples.png (half lowest, half highest)")
    figures.add_argument("--outdir", type=Path, default=Path("results/report"))
    matrix = commands.add_parser("matrix", help="figure of a matrix.json of scripts/matrix.py")
    matrix.add_argument("--matrix", type=Path, required=True)
    matrix.add_argument("--output", type=Path, default=Path("results/report/matrix.png"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "figures":
        written = make_figures(
            args.result, args.images, args.labels, args.predictions, args.benchmarks, args.outdir, args.examples
        )
        for path in written:
            print(path)
    else:
        print(plot_matrix(load_json(args.matrix, "matrix file"), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
