#!/usr/bin/env python3
"""Fetch the model checkpoint from its URL once (resumable), or check a local one; print its sha256.

    name=deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth
    python scripts/fetch_checkpoint.py \\
        https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r50-d8_512x1024_40k_cityscapes/$name \\
        --output checkpoints/$name --sha256-json checkpoints/$name.json
    python scripts/fetch_checkpoint.py checkpoints/my_model.pth      # a local file: verify only

The 8 hex digits before ``.pth`` in an OpenMMLab name are the start of the file's sha256: a
file that does not match is refused. A name without them is accepted unchecked. An
interrupted download is kept as ``<output>.part`` and resumed by the next run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.io.binio import write_atomic
from deeplabv3_pipeline.model.checkpoint import fetch

LOG = logging.getLogger("fetch_checkpoint")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", help="the checkpoint's http(s):// or file:// URL, or a local file")
    parser.add_argument(
        "--output", type=Path, metavar="PATH", help="where to save it (needed for a URL; a local file is copied)"
    )
    parser.add_argument(
        "--sha256-json", type=Path, metavar="FILE", help='also write {"checkpoint", "sha256", "source"} to FILE'
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds without data before giving up (60)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    path, digest = fetch(args.source, args.output, timeout=args.timeout)
    if args.sha256_json:
        record = {"checkpoint": str(path), "sha256": digest, "source": args.source}
        write_atomic(args.sha256_json, (json.dumps(record, indent=2) + "\n").encode())
    LOG.info("checkpoint %s: sha256 %s", path, digest)
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
