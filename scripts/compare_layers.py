#!/usr/bin/env python3
"""Where two runs of one network part: a per-layer comparison on preprocessed images.

    python scripts/compare_layers.py \\
        --reference results/demo/checkpoints/deeplabv3.pth --reference-backend pytorch \\
        --model-config deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024 \\
        --model results/models/deeplabv3/deeplabv3_sim_bs1_int8.onnx --backend onnxruntime --precision int8 \\
        --graph results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        --input results/prep_dataset/demo/val/demoburg_000000_000019_leftImg8bit.bin --input-shape 1024 2048 \\
        --output results/debug/demo/val/deeplabv3/onnxruntime-int8/layers

Opens both models for the comparison in their backends (ONNX Runtime: copies of the model with a
few GB of the compared tensors as outputs each; OpenVINO: parts of it with a few GB of them each;
PyTorch: forward hooks, matched to the ONNX export's names; the model files are not changed), keeps one
side's tensors of an image while the other's stream into the comparison (in memory where one side is PyTorch, else the
reference's on disk beside the output), matches the tensors by name in the order of the ONNX graph ``--graph`` (default:
the reference, where it is an ONNX file), and writes one row per tensor both compute with Ascend
msit/ait ``debug compare``'s metrics (cosine similarity, max and mean absolute error, relative Euclidean
distance, KL divergence of the softmaxed logits, RMSE; the worst over the images given) to
``<output>.csv`` and ``<output>.json``, with the first tensor past the thresholds (ait's defaults;
``--threshold rmse=0.5``) and whether the error starts there or accumulates
(deeplabv3_pipeline/evaluation/layers.py), and draws the metrics along the network to ``<output>.png``.

A backend that does not run here (tensorrt, ascend) has its own tool for this (Polygraphy, msit):
``--source`` names the ONNX model its engine or ``.om`` is built from, and ``<output>.json`` holds the
commands that compare them with the fp32 ONNX model ``--graph`` on the same images, marked not run.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.backends import (
    BACKENDS,
    PRECISIONS,
    add_backend_arguments,
    check_precision,
    default_precision,
    get_spec,
)
from deeplabv3_pipeline.benchmark.variant_timing import peak_rss_mb
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.evaluation.layers import (
    METRICS,
    THRESHOLDS,
    compare_dumps,
    error_origin,
    first_past,
    graph_order,
    logits_tensor,
    parse_thresholds,
    read_graph,
)
from deeplabv3_pipeline.io.binio import read_bin, write_json, write_text
from deeplabv3_pipeline.options import from_namespace
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
    parser.add_argument("--reference", type=Path, required=True, help="the reference model (fp32)")
    parser.add_argument("--reference-backend", choices=BACKENDS, default="onnxruntime")
    parser.add_argument("--reference-precision", choices=sorted({p for ps in PRECISIONS.values() for p in ps}))
    parser.add_argument("--model", type=Path, required=True, help="the model compared with it")
    add_backend_arguments(parser, default="onnxruntime")
    parser.add_argument("--graph", type=Path, help="the ONNX model whose tensor names and order the rows follow")
    parser.add_argument("--source", type=Path, help="tensorrt, ascend: the ONNX model --model is built from")
    parser.add_argument("--input", type=Path, nargs="+", required=True, help="preprocessed .bin images")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC=LIMIT",
        help="a threshold other than ait's ("
        + ", ".join(f"{name}={limit:g}" for name, (_, limit) in THRESHOLDS.items())
        + ")",
    )
    parser.add_argument("--output", type=Path, required=True, help="writes <output>.json (and .csv, .png)")
    return parser.parse_args(argv)


def csv_text(rows: Sequence[dict]) -> str:
    return csv_table(COLUMNS, [{**row, "past": "; ".join(row["past"])} for row in rows])


def open_dump(backend: str, model: Path, precision: str, args: argparse.Namespace, graph: Path):
    """``model`` opened for the comparison in ``backend`` at ``precision`` (the CLI's backend flags)."""
    spec = get_spec(backend)
    check_precision(backend, precision)
    if spec.tensors is None:
        raise UserError(
            f"backend {backend} cannot be the reference here: compare with onnxruntime, openvino or pytorch"
        )
    if not model.is_file():
        raise UserError(f"model file {model} does not exist: run the workflow's model rules first")
    return spec.tensors(model, precision, args.threads, from_namespace(spec.options, args), graph)


def side(model: Path, backend: str, precision: str) -> dict:
    """One side of the comparison in the record (its ``dump``, how its tensors were read, added once opened)."""
    return {"model": str(model), "backend": backend, "precision": precision}


def planned(args: argparse.Namespace, record: dict) -> int:
    """The backend's own tool's commands in ``<output>.json``, not run (its runtime is not here)."""
    spec = get_spec(args.backend)
    assert spec.layer_compare is not None
    if args.source is None or not args.source.is_file():
        raise UserError(f"backend {args.backend}: --source must name the ONNX model {args.model} is built from")
    options = from_namespace(spec.options, args)
    commands = spec.layer_compare.commands(
        args.graph, args.source, args.model, args.input, args.output.parent, args.input_shape, args.precision, options
    )
    missing = [tool for tool in spec.layer_compare.tools if shutil.which(tool) is None]
    record |= {
        # what the tool compares the model with: the fp32 ONNX model in ONNX Runtime
        "reference": side(args.graph, "onnxruntime", "fp32"),
        "status": "planned: not run here" + (f" ({', '.join(missing)} not found)" if missing else ""),
        "source": str(args.source),
        "commands": [shlex.join(command) for command in commands],
    }
    write_json(args.output.with_suffix(".json"), record)
    print(f"{args.backend}: the comparison is planned, not run here; its commands are in {args.output}.json")
    for command in record["commands"]:
        print(f"  {command}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    thresholds = parse_thresholds(args.threshold)
    if args.input_shape is None:
        raise UserError("--input-shape H W is required: the size of the preprocessed images")
    args.precision = args.precision or default_precision(args.backend)
    args.reference_precision = args.reference_precision or default_precision(args.reference_backend)
    if args.graph is None:
        if args.reference.suffix != ".onnx":
            raise UserError("--graph is required: the ONNX model whose tensor names the rows follow")
        args.graph = args.reference
    for path in (args.graph, *args.input):
        if not path.is_file():
            raise UserError(f"{path} does not exist")
    record = {
        "reference": side(args.reference, args.reference_backend, args.reference_precision),
        "model": side(args.model, args.backend, args.precision),
        "graph": str(args.graph),
        "inputs": [str(path) for path in args.input],
        "thresholds": {name: {"fails": direction, "limit": limit} for name, (direction, limit) in thresholds.items()},
    }
    if get_spec(args.backend).tensors is None:
        check_precision(args.backend, args.precision)
        return planned(args, record)
    reference = open_dump(args.reference_backend, args.reference, args.reference_precision, args, args.graph)
    model = open_dump(args.backend, args.model, args.precision, args, args.graph)
    record["reference"]["dump"], record["model"]["dump"] = reference.how, model.how
    args.output.parent.mkdir(parents=True, exist_ok=True)
    images = (read_bin(path, "float32", (1, 3, *args.input_shape)) for path in args.input)
    comparison = compare_dumps(reference, model, args.graph, images, args.output.parent, thresholds)
    record["held"], record["seconds"] = comparison.held, comparison.seconds
    record["peak_rss_mb"] = peak_rss_mb()
    rows = comparison.rows
    first, origin = first_past(rows), error_origin(rows, graph_order(read_graph(args.graph)))
    record |= {
        "logits": logits_tensor(read_graph(args.graph)),
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
