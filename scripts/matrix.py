#!/usr/bin/env python3
"""The validation matrix: every cell (model x variant) in one table.

    python scripts/matrix.py --reference pytorch-fp32 --output results/matrix \\
        --results results/cells/demo/val/*/*/result.json

Reads each cell's ``result.json`` (scripts/evaluate.py) and the prediction files it records it
evaluated; compares each cell with the reference variant of its model frame by frame (pixel
agreement, overall and worst frame), class by class (``delta_class_iou``; the table names the classes
that dropped most) and with the mIoU mmseg publishes for its config. With any ``--gate-*`` option each
row says whether the cell passes that accuracy gate against its reference (``gate``, ``gate_reason``);
``--fail-on-gate`` then exits with status 2 after writing the table if a cell fails. Writes
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
from deeplabv3_pipeline.report.matrix import Gate, csv_text, gate_failure, markdown, matrix_rows, synthetic_note
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
    gate = parser.add_argument_group("accuracy gate of each cell against its model's reference cell (matrix.gate)")
    gate.add_argument("--gate-relative", type=share, help="mIoU at least this share of the reference's (0.99)")
    gate.add_argument("--gate-max-drop", type=points, help="mIoU at most this many points below the reference's")
    gate.add_argument("--gate-min-pixel-agreement", type=share, help="pixels of the reference's class, at least")
    gate.add_argument("--fail-on-gate", action="store_true", help="exit with status 2 if a cell fails (table written)")
    return parser.parse_args(argv)


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def points(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of mIoU points (>= 0)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = {str(path): load_result(path) for path in dict.fromkeys(args.results)}
    gate = Gate(args.gate_relative, args.gate_max_drop, args.gate_min_pixel_agreement)
    rows = matrix_rows(results, args.reference, published_miou, gate)
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
    failure = gate_failure(rows, str(args.output.with_suffix(".json")))
    if failure and args.fail_on_gate:
        raise UserError(failure)
    if failure:
        print(failure, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
