#!/usr/bin/env python3
"""The validation matrix: every cell (model x variant) in one table.

    python scripts/matrix.py --reference pytorch-fp32 --output results/matrix \\
        --results results/cells/demo/val/*/*/result.json

Reads each cell's ``result.json`` (scripts/evaluate.py) and the prediction files it records it
evaluated; compares each cell with the reference variant of its model frame by frame (pixel
agreement, overall and worst frame) and with the mIoU mmseg publishes for its config. Writes
``<output>.json`` (``{"rows": [...]}``, with per-image agreement, and the ``stamp`` of the cells and
configs it shows: deeplabv3_pipeline/report/stamp.py), ``<output>.csv`` and ``<output>.md``,
and prints the table. Cells evaluated on other frames than their reference are an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json, write_text
from deeplabv3_pipeline.model.zoo import published_miou
from deeplabv3_pipeline.report.matrix import csv_text, markdown, matrix_rows, synthetic_note
from deeplabv3_pipeline.report.stamp import combined, result_stamp


def load_result(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} does not exist: evaluate that cell first")
    return json.loads(path.read_text())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="result.json of each cell")
    parser.add_argument("--reference", required=True, help="the variant each model's cells are compared with")
    parser.add_argument("--output", type=Path, default=Path("results/matrix"), help="writes <output>.json/.csv/.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = {str(path): load_result(path) for path in dict.fromkeys(args.results)}
    rows = matrix_rows(results, args.reference, published_miou)
    note = synthetic_note(rows)
    table = markdown(rows)
    stamps = [result_stamp(result) for result in results.values()]
    stamp = combined(stamps) if all(stamps) else None  # (results made by hand record no config)
    made_for = f"_{stamp.sentence()}_\n\n" if stamp else ""
    matrix = {"reference": args.reference, "note": note, "rows": rows}
    write_json(args.output.with_suffix(".json"), matrix | ({"stamp": stamp.to_json()} if stamp else {}))
    write_text(args.output.with_suffix(".csv"), csv_text(rows))
    write_text(args.output.with_suffix(".md"), made_for + (f"**{note}**\n\n" if note else "") + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
