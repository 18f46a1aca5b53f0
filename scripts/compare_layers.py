#!/usr/bin/env python3
"""Where two ONNX models of one network part: a per-layer comparison on preprocessed images.

    python scripts/compare_layers.py --reference results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        --model results/models/deeplabv3/deeplabv3_sim_bs1_int8.onnx \\
        --input results/prep_dataset/demo/val/frame_leftImg8bit.bin --input-shape 1024 2048 \\
        --output results/debug/demo/val/deeplabv3/onnxruntime-int8/layers

Runs both models in ONNX Runtime on copies whose every float tensor is an output (the model files are
not changed), matches the tensors by name in the reference graph's order, and writes one row per tensor
both compute with Ascend msit/ait ``debug compare``'s metrics (cosine similarity, max and mean absolute
error, relative Euclidean distance, KL divergence of the softmaxed logits, RMSE; the worst over the
images given) to ``<output>.csv`` and ``<output>.json``, with the first tensor past ait's thresholds and
whether the error starts there or accumulates (deeplabv3_pipeline/evaluation/layers.py), and draws the
metrics along the network to ``<output>.png``. Prints that first tensor, or that none is past the
thresholds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.evaluation.layers import (
    METRICS,
    THRESHOLDS,
    OnnxTensors,
    compare_tensors,
    error_origin,
    first_past,
    graph_order,
    logits_tensor,
    worst_rows,
)
from deeplabv3_pipeline.io.binio import read_bin, write_json, write_text
from deeplabv3_pipeline.report.plots import plot_layers
from deeplabv3_pipeline.report.tables import csv_table

COLUMNS = (
    "index",
    "tensor",
    "op_type",
    *METRICS,
    "past",
    "reference_shape",
    "reference_dtype",
    "other_shape",
    "other_dtype",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="the reference ONNX model (fp32)")
    parser.add_argument("--model", type=Path, required=True, help="the ONNX model compared with it")
    parser.add_argument("--input", type=Path, nargs="+", required=True, help="preprocessed .bin images")
    parser.add_argument("--input-shape", type=int, nargs=2, required=True, metavar=("H", "W"))
    parser.add_argument("--output", type=Path, required=True, help="writes <output>.csv, .json and .png")
    return parser.parse_args(argv)


def csv_text(rows: Sequence[dict]) -> str:
    return csv_table(COLUMNS, [{**row, "past": "; ".join(row["past"])} for row in rows])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.reference, args.model, *args.input):
        if not path.is_file():
            raise UserError(f"{path} does not exist")
    reference, model = OnnxTensors(args.reference), OnnxTensors(args.model)
    order, logits = graph_order(reference.graph), logits_tensor(reference.graph)
    per_image = []
    for path in args.input:
        image = read_bin(path, "float32", (1, 3, *args.input_shape))
        per_image.append(compare_tensors(order, reference(image), model(image), logits))
    rows = worst_rows(per_image)
    first, origin = first_past(rows), error_origin(rows, order)
    record = {
        "reference": str(args.reference),
        "model": str(args.model),
        "inputs": [str(path) for path in args.input],
        "thresholds": {name: {"fails": direction, "limit": limit} for name, (direction, limit) in THRESHOLDS.items()},
        "logits": logits,
        "first_past": first and {"index": first["index"], "tensor": first["tensor"], "past": first["past"]},
        "origin": origin,
        "rows": rows,
    }
    write_json(args.output.with_suffix(".json"), record)
    write_text(args.output.with_suffix(".csv"), csv_text(rows))
    plot_layers(record, args.output.with_suffix(".png"))
    if first is None:
        print(f"{len(rows)} tensors compared: none past the thresholds")
    else:
        print(
            f"{len(rows)} tensors compared: the first past the thresholds is #{first['index']} {first['tensor']} "
            f"({first['op_type']}: {', '.join(first['past'])}); the error {origin}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
