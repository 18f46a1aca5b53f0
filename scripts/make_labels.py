#!/usr/bin/env python3
"""Make ``*_gtFine_labelTrainIds.png`` from ``*_gtFine_labelIds.png`` with cityscapesscripts' label table.

    python scripts/make_labels.py --gt_path /data/cityscapes/gtFine/val --output results/labels/val

Only frames without a trainIds file in ``--gt_path`` get one, written under ``--output``
in the same ``<city>/`` layout: the dataset folder is never written to.
``--label-ids A.png B.png --train-ids A'.png B'.png`` converts exactly the files given (the workflow's form).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.data.cityscapes import convert_label_file, missing_train_ids, train_ids_path
from deeplabv3_pipeline.errors import UserError, run_cli

LOG = logging.getLogger("make_labels")


def label_pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(labelIds, trainIds) pairs: ``--label-ids`` with ``--train-ids`` one for one, or the folder form."""
    if args.label_ids:
        if len(args.label_ids) != len(args.train_ids or []):
            raise UserError(f"--label-ids has {len(args.label_ids)} files but --train-ids {len(args.train_ids or [])}")
        return list(zip(args.label_ids, args.train_ids, strict=True))
    if not (args.gt_path and args.output):
        raise UserError("give --gt_path and --output (folders), or --label-ids and --train-ids (files)")
    if not args.gt_path.is_dir():
        raise UserError(f"label folder {args.gt_path} does not exist: pass the dataset's gtFine/<split> folder")
    args.output.mkdir(parents=True, exist_ok=True)
    return [(source, train_ids_path(source, args.output)) for source in missing_train_ids(args.gt_path)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt_path", type=Path, help="gtFine/<split> of the dataset")
    parser.add_argument("--output", type=Path, help="folder for the made trainIds PNGs")
    parser.add_argument("--label-ids", type=Path, nargs="+", help="labelIds PNGs (instead of --gt_path)")
    parser.add_argument("--train-ids", type=Path, nargs="+", help="trainIds PNG of each of --label-ids, in order")
    parser.add_argument(
        "--shape", type=int, nargs=2, metavar=("H", "W"), help="the images' size: a label of another is an error"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pairs = label_pairs(args)
    for source, destination in pairs:
        convert_label_file(source, destination, tuple(args.shape) if args.shape else None)
    LOG.info("made %d trainIds labels", len(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
