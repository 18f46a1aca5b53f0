#!/usr/bin/env python3
"""Merge the per-shard inference summaries of one cell (model x variant) into its ``summary.json``.

python scripts/gather_summaries.py results/infer/demo/val/deeplabv3/onnxruntime-fp32/shards/*.json \\
    -o results/infer/demo/val/deeplabv3/onnxruntime-fp32/summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.benchmark.timing import merge_summaries
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shard_summaries", type=Path, nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summaries = [json.loads(path.read_text()) for path in args.shard_summaries]
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read a shard summary: {error}") from error
    write_json(args.output, merge_summaries(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
