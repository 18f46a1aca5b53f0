#!/usr/bin/env python3
"""Make the synthetic demo inputs: a Cityscapes-shaped dataset, or a random checkpoint in mmseg's format.

    python scripts/make_demo_data.py dataset --root results/demo/cityscapes --count 4 --shape 1024 2048
    python scripts/make_demo_data.py checkpoint --output results/demo/checkpoints/deeplabv3.pth --model-config NAME

Neither is real: the dataset is drawn, the checkpoint is untrained. They let every stage of
the workflow run where Cityscapes and the trained weights are not at hand.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli

LOG = logging.getLogger("make_demo_data")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="what", required=True)
    dataset = commands.add_parser("dataset", help="a synthetic Cityscapes-shaped tree (leftImg8bit + gtFine labelIds)")
    dataset.add_argument("--root", type=Path, required=True)
    dataset.add_argument("--split", default="val")
    dataset.add_argument("--count", type=int, default=4)
    dataset.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    dataset.add_argument("--seed", type=int, default=0)
    checkpoint = commands.add_parser("checkpoint", help="a randomly initialised model in the 0.x checkpoint format")
    checkpoint.add_argument("--output", type=Path, required=True)
    checkpoint.add_argument("--model-config", required=True, help="mmseg config name or file")
    checkpoint.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.what == "dataset":
        from deeplabv3_pipeline.data.demo import make_demo_dataset

        frames = make_demo_dataset(args.root, args.split, args.count, tuple(args.shape), args.seed)
        LOG.warning("wrote %d SYNTHETIC demo frames (not Cityscapes) under %s", len(frames), args.root)
    else:
        from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint

        make_random_checkpoint(args.model_config, args.output, args.seed)
        LOG.warning("wrote a RANDOMLY INITIALISED (untrained) checkpoint to %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
