#!/usr/bin/env python3
"""Publish one backend's result as ``results/result.json`` (+ ``.txt``), behind an optional mIoU gate.

    python scripts/select_result.py results/cells/demo/val/deeplabv3/onnxruntime-fp32/result.json results/result.json \\
        --expect-miou 79.09 --tolerance 0.3

With ``--expect-miou`` the measured mIoU must be within ``--tolerance`` of it, or the command
fails with both numbers; the backend's own result.json is kept either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_atomic


def check_expectation(miou: float | None, expected: float, tolerance: float, source: Path) -> None:
    if miou is None or abs(miou - expected) > tolerance:
        raise UserError(
            f"mIoU {miou} in {source} is outside the expected {expected} +/- {tolerance} (config expect.miou / "
            "expect.tolerance). Wrong checkpoint, dataset split or preprocessing? The result itself is kept."
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a backend's result.json")
    parser.add_argument("destination", type=Path, help="results/result.json")
    parser.add_argument("--expect-miou", type=float, default=None)
    parser.add_argument("--tolerance", type=float, default=0.3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = json.loads(args.source.read_text())
    if args.expect_miou is not None:
        check_expectation(result["mIoU"], args.expect_miou, args.tolerance, args.source)
    for suffix in (".json", ".txt"):
        write_atomic(args.destination.with_suffix(suffix), args.source.with_suffix(suffix).read_bytes())
    print(f"{result['backend']}: mIoU {result['mIoU']}, aAcc {result['aAcc']} -> {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
