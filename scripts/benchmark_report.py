#!/usr/bin/env python3
"""Gather the benchmark: every timed variant beside the reference, with this machine's peaks.

    python scripts/benchmark_report.py --machine results/benchmark/machine.json \\
        --variants results/benchmark/*.json --reference pytorch-fp32 --min-agreement 0.98 --frames 500 \\
        --markdown results/benchmark.md --json results/benchmark.json --html results/report/benchmark.html

Reads the variant files of scripts/benchmark_variant.py and the predictions each records, and
writes the table (median s/image, images/s, speed-up over the reference, pixel agreement with it,
the precision the runtime computed in, executed operations per second and their share of this
CPU's peak, peak memory, the projected compute time of ``--frames`` images) and names the fastest
variant whose agreement is at least ``--min-agreement`` (see deeplabv3_pipeline/benchmark/speed.py).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.benchmark.speed import summarise, to_html_body, to_markdown
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json, write_text
from deeplabv3_pipeline.report.stamp import Stamp
from deeplabv3_pipeline.report.tables import html_page


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {what} {path}: {error}") from error


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", type=Path, required=True, help="scripts/benchmark_machine.py's json")
    parser.add_argument("--variants", type=Path, nargs="+", required=True, help="scripts/benchmark_variant.py's json")
    parser.add_argument("--reference", default="pytorch-fp32", help="the variant speed-ups and agreement refer to")
    parser.add_argument("--min-agreement", type=float, default=0.98)
    parser.add_argument("--frames", type=int, required=True, help="images of the configured list (projection)")
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--html", type=Path, help="the table as an HTML page (the report's)")
    parser.add_argument(
        "--stamp",
        type=json.loads,
        help="what the table is made for, as JSON (deeplabv3_pipeline/report/stamp.py): kept in --json, "
        "written under the tables' titles",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = read_json(args.machine, "machine file")
    variants = [read_json(path, "benchmark file") for path in args.variants]
    predictions = {variant["variant"]: np.load(variant["predictions"]) for variant in variants}
    try:
        summary = summarise(machine, variants, predictions, args.reference, args.frames, args.min_agreement)
    except ValueError as error:
        raise UserError(f"{error}: add it to benchmark.variants, or time the variants on the same images") from error
    stamp = Stamp.from_json(args.stamp) if args.stamp else None
    write_json(args.json, summary | ({"stamp": stamp.to_json()} if stamp else {}))
    made_for = f"_{stamp.sentence()}_\n\n" if stamp else ""
    write_text(args.markdown, made_for + to_markdown(summary))
    if args.html:
        made_for = f"<p>{html.escape(stamp.sentence())}</p>" if stamp else ""
        write_text(args.html, html_page("Benchmark", made_for + to_html_body(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
