#!/usr/bin/env python3
"""Compare backends: pixel agreement with a reference backend, mIoU and its delta, images/s.

    python scripts/compare.py --reference pytorch --backends onnxruntime openvino pytorch \\
        --results results --output results/compare

Reads ``<results>/<backend>/result.json`` and the predictions ``<results>/infer/<backend>/*_0.bin``
of each backend; writes ``<output>.json`` (with per-image agreement) and ``<output>.csv``, and
prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.errors import UserError, run_cli

COLUMNS = (
    "backend",
    "mIoU",
    "mIoU_delta",
    "aAcc",
    "pixel_agreement",
    "compute_images_per_s",
    "end_to_end_images_per_s",
    "num_images",
)


def load_result(results: Path, backend: str) -> dict:
    path = results / backend / "result.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: evaluate backend {backend} first")
    return json.loads(path.read_text())


def pixel_agreement(folder: Path, reference_folder: Path) -> dict[str, float]:
    """Per prediction file: the fraction of pixels whose class equals the reference's."""
    agreement = {}
    for path in sorted(reference_folder.glob("*_0.bin")):
        other = folder / path.name
        if not other.is_file():
            raise UserError(f"{other} is missing: {folder} and {reference_folder} hold different images")
        reference = np.fromfile(path, dtype=np.int64)
        ours = np.fromfile(other, dtype=np.int64)
        if ours.shape != reference.shape:
            raise UserError(f"{other} and {path} differ in size: made at different input shapes?")
        agreement[path.name.removesuffix("_leftImg8bit_0.bin")] = float(np.mean(ours == reference))
    return agreement


def compare_row(backend: str, result: dict, reference: dict, agreement: dict[str, float]) -> dict:
    speed = result.get("throughput") or {}
    return {
        "backend": backend,
        "mIoU": result["mIoU"],
        "mIoU_delta": None if result["mIoU"] is None else round(result["mIoU"] - reference["mIoU"], 2),
        "aAcc": result["aAcc"],
        "pixel_agreement": float(np.mean(list(agreement.values()))) if agreement else None,
        "compute_images_per_s": speed.get("compute_images_per_s"),
        "end_to_end_images_per_s": speed.get("end_to_end_images_per_s"),
        "num_images": result["num_images"],
        "per_image_agreement": agreement,
    }


def format_table(rows: list[dict]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}"
        return "-" if value is None else str(value)

    table = [list(COLUMNS)] + [[cell(row[column]) for column in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True)) for line in table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default="pytorch", help="the backend every other is compared with")
    parser.add_argument("--backends", nargs="+", required=True)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--output", type=Path, default=Path("results/compare"), help="writes <output>.json and .csv")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reference = load_result(args.results, args.reference)
    reference_folder = args.results / "infer" / args.reference
    rows = []
    for backend in dict.fromkeys([args.reference, *args.backends]):
        result = load_result(args.results, backend)
        agreement = pixel_agreement(args.results / "infer" / backend, reference_folder)
        rows.append(compare_row(backend, result, reference, agreement))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    comparison = {"reference": args.reference, "backends": {row["backend"]: row for row in rows}}
    args.output.with_suffix(".json").write_text(json.dumps(comparison, indent=2) + "\n")
    with open(args.output.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
