#!/usr/bin/env python3
"""Cityscapes images -> one raw float32 ``.bin`` per image, as the guide's deeplabv3_torch_preprocess.py.

    python scripts/preprocess.py /data/cityscapes/leftImg8bit/val prep_dataset --input-shape 1024 2048

Every ``*_leftImg8bit.png`` under the source folder (recursively) becomes
``{image stem}.bin``: BGR->RGB, (x - mean) / std, CHW, shape 1x3xHxW, no resize.

    python scripts/preprocess.py --images a_leftImg8bit.png b_leftImg8bit.png --outputs a.bin b.bin

converts exactly the images given into exactly the files given (what the workflow runs, so that
nothing it did not declare is read or written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.data.cityscapes import IMAGE_SUFFIX, frame_id, image_stem
from deeplabv3_pipeline.data.transform import preprocess_image
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_atomic
from deeplabv3_pipeline.io.progress import progress

LOG = logging.getLogger("preprocess")


def list_images(source: Path) -> list[Path]:
    """Every ``*_leftImg8bit.png`` below ``source``, sorted by frame (the order common.smk splits shards in)."""
    if not source.is_dir():
        raise UserError(f"image folder {source} does not exist: pass the dataset's leftImg8bit/<split> folder")
    images = sorted(source.rglob(f"*{IMAGE_SUFFIX}"), key=lambda path: frame_id(path.name))
    if not images:
        raise UserError(f"no *{IMAGE_SUFFIX} under {source}: is it the leftImg8bit/<split> folder?")
    return images


def image_pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(image, .bin) pairs: the folder form, or ``--images`` with ``--outputs`` one for one."""
    if args.images:
        if args.src_path or args.save_path:
            raise UserError("give either SRC_PATH SAVE_PATH or --images/--outputs, not both")
        if len(args.images) != len(args.outputs or []):
            raise UserError(f"--images has {len(args.images)} files but --outputs {len(args.outputs or [])}")
        return list(zip(args.images, args.outputs, strict=True))
    if not (args.src_path and args.save_path):
        raise UserError("give SRC_PATH SAVE_PATH (folders), or --images and --outputs (files)")
    return [(image, args.save_path / f"{image_stem(image)}.bin") for image in list_images(args.src_path)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_path", type=Path, nargs="?", help="leftImg8bit/<split> folder")
    parser.add_argument("save_path", type=Path, nargs="?", help="folder for the .bin files")
    parser.add_argument("--images", type=Path, nargs="+", help="image files (instead of SRC_PATH)")
    parser.add_argument("--outputs", type=Path, nargs="+", help=".bin file of each of --images, in order")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pairs = image_pairs(args)
    for image, output in progress(pairs, len(pairs), "preprocess"):
        write_atomic(output, preprocess_image(image, tuple(args.input_shape)))
    LOG.info("wrote %d .bin files", len(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
