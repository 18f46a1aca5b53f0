#!/usr/bin/env python3
"""Cityscapes images -> one raw float32 ``.bin`` per image, as the guide's deeplabv3_torch_preprocess.py.

    python scripts/preprocess.py /data/cityscapes/leftImg8bit/val results/prep_dataset --input-shape 1024 2048

Every ``*_leftImg8bit.png`` under the source folder (recursively) becomes
``{image stem}.bin``: BGR->RGB, (x - mean) / std, CHW, shape 1x3xHxW, no resize.
``--shard K --num-shards N`` takes part K of the sorted image list split in N balanced parts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.binio import write_atomic
from deeplabv3_pipeline.cityscapes import IMAGE_SUFFIX, frame_id, image_stem, shard
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.progress import progress
from deeplabv3_pipeline.transform import preprocess_image

LOG = logging.getLogger("preprocess")


def list_images(source: Path) -> list[Path]:
    """Every ``*_leftImg8bit.png`` below ``source``, sorted by frame (the order common.smk splits shards in)."""
    if not source.is_dir():
        raise UserError(f"image folder {source} does not exist: pass the dataset's leftImg8bit/<split> folder")
    images = sorted(source.rglob(f"*{IMAGE_SUFFIX}"), key=lambda path: frame_id(path.name))
    if not images:
        raise UserError(f"no *{IMAGE_SUFFIX} under {source}: is it the leftImg8bit/<split> folder?")
    return images


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_path", type=Path, help="leftImg8bit/<split> folder")
    parser.add_argument("save_path", type=Path, help="folder for the .bin files")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    parser.add_argument("--shard", type=int, default=0, help="which part of the image list (0-based)")
    parser.add_argument("--num-shards", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    images = shard(list_images(args.src_path), args.shard, args.num_shards)
    args.save_path.mkdir(parents=True, exist_ok=True)
    for image in progress(images, len(images), "preprocess"):
        write_atomic(args.save_path / f"{image_stem(image)}.bin", preprocess_image(image, tuple(args.input_shape)))
    LOG.info("wrote %d .bin files to %s", len(images), args.save_path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
