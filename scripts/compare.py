#!/usr/bin/env python3
"""Compare backends: pixel agreement with a reference backend, mIoU and its delta, images/s.

    python scripts/compare.py --reference results/pytorch/result.json \\
        --results results/onnxruntime/result.json results/openvino/result.json --output results/compare

Reads each backend's ``result.json`` (scripts/evaluate.py) and the prediction files it records it
evaluated, frame by frame; writes ``<output>.json`` (with per-image agreement) and ``<output>.csv``,
and prints the table. Backends evaluated on other frames than the reference are an error.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.binio import write_json, write_text
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.tables import markdown_table

COLUMNS = (
    "backend",
    "inference_precision",
    "mIoU",
    "mIoU_delta",
    "aAcc",
    "pixel_agreement",
    "compute_images_per_s",
    "end_to_end_images_per_s",
    "num_images",
)


def load_result(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} does not exist: evaluate that backend first")
    result = json.loads(path.read_text())
    if not result.get("predictions"):
        raise UserError(f"{path} records no prediction files: evaluate that backend again with this version")
    return result


def pixel_agreement(predictions: dict[str, str], reference: dict[str, str]) -> dict[str, float]:
    """Per frame: the fraction of pixels whose class equals the reference's."""
    if set(predictions) != set(reference):
        different = sorted(set(predictions) ^ set(reference))
        raise UserError(
            f"the backends were evaluated on different frames (e.g. {different[0]}): rerun them with one config"
        )
    agreement = {}
    for frame in sorted(reference):
        ours = np.fromfile(predictions[frame], dtype=np.int64)
        theirs = np.fromfile(reference[frame], dtype=np.int64)
        if ours.shape != theirs.shape:
            raise UserError(f"{predictions[frame]} and {reference[frame]} differ in size: made at different shapes?")
        agreement[frame] = float(np.mean(ours == theirs))
    return agreement


def compare_row(backend: str, result: dict, reference: dict, agreement: dict[str, float]) -> dict:
    speed = result.get("throughput") or {}
    return {
        "backend": backend,
        "inference_precision": result.get("inference_precision"),
        "mIoU": result["mIoU"],
        "mIoU_delta": None if result["mIoU"] is None else round(result["mIoU"] - reference["mIoU"], 2),
        "aAcc": result["aAcc"],
        "pixel_agreement": float(np.mean(list(agreement.values()))) if agreement else None,
        "compute_images_per_s": speed.get("compute_images_per_s"),
        "end_to_end_images_per_s": speed.get("end_to_end_images_per_s"),
        "num_images": result["num_images"],
        "per_image_agreement": agreement,
    }


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}"
    return "-" if value is None else str(value)


def format_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table (readable in a terminal, pasteable into a report)."""
    return "\n".join(markdown_table(list(COLUMNS), [[format_cell(row[column]) for column in COLUMNS] for row in rows]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="result.json every other is compared with")
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="result.json of each backend")
    parser.add_argument("--output", type=Path, default=Path("results/compare"), help="writes <output>.json and .csv")
    return parser.parse_args(argv)


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reference = load_result(args.reference)
    rows = []
    for path in dict.fromkeys([args.reference, *args.results]):
        result = load_result(path)
        agreement = pixel_agreement(result["predictions"], reference["predictions"])
        rows.append(compare_row(result["backend"], result, reference, agreement))
    comparison = {"reference": reference["backend"], "backends": {row["backend"]: row for row in rows}}
    write_json(args.output.with_suffix(".json"), comparison)
    write_text(args.output.with_suffix(".csv"), csv_text(rows))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
