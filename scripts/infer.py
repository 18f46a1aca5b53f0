#!/usr/bin/env python3
"""Run the model over preprocessed ``.bin`` files, with a command line that mirrors ais_bench.

    python scripts/infer.py --model results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        --input results/prep_dataset/demo/val --output results/infer/demo/val/deeplabv3/onnxruntime-fp32 \\
        --outfmt BIN --backend onnxruntime

Each input ``{stem}.bin`` gives ``{stem}_0.bin`` (raw int64 1x1xHxW class ids), ais_bench's
naming, and a summary json with ais_bench's fields (``NPU_compute_time``, ``throughput``: compute
only) plus end-to-end wall time. The next input is read while the current one computes, and
outputs are written in the background, so I/O stays off the compute path.
Every backend goes the same way (``deeplabv3_pipeline.backends``): open the model, run its
``infer_files``; ``--backend tensorrt`` runs a TensorRT engine with its own CUDA pipeline (compute
timed on the GPU), ``--backend ascend`` runs ais_bench on an ``.om`` model and maps its output.

``--input`` takes folders (every ``*.bin`` directly in it, as ais_bench reads them) or files; the
workflow passes exactly the files of one job. ``--precision`` is what must run: the backend pins
it, and the run stops if the runtime reports another (``inference_precision`` in the summary).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.backends import add_backend_arguments, open_checked
from deeplabv3_pipeline.benchmark.timing import inference_summary
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import list_bins, write_json

LOG = logging.getLogger("infer")


def list_inputs(sources: list[Path]) -> list[Path]:
    """The input files (``binio.list_bins``); a stem given twice is an error (outputs are named by stem)."""
    inputs = list_bins(sources)
    stems = [path.stem for path in inputs]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise UserError(f"input {repeated[0]}.bin is given twice: its outputs would overwrite each other")
    return inputs


def summary_args(args: argparse.Namespace) -> dict:
    """The command's arguments, as JSON (paths as strings)."""

    def plain(value: object) -> object:
        if isinstance(value, list):
            return [plain(item) for item in value]
        return str(value) if isinstance(value, Path) else value

    return {key: plain(value) for key, value in vars(args).items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help=".onnx or OpenVINO .xml (onnxruntime, openvino), .pth (pytorch), .engine (tensorrt), .om (ascend)",
    )
    parser.add_argument("--input", type=Path, nargs="+", required=True, help=".bin files or folders of them")
    parser.add_argument("--output", type=Path, required=True, help="folder for {stem}_0.bin")
    parser.add_argument("--outfmt", choices=("BIN", "NPY"), default="BIN")
    parser.add_argument("--summary", type=Path, help="summary json (default: <output>/summary.json)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (as ais_bench)")
    add_backend_arguments(parser, default="onnxruntime")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = list_inputs(args.input)
    summary_path = args.summary or args.output / "summary.json"
    backend = open_checked(args)
    run = backend.infer_files(inputs, args.output, args.outfmt, args.warmup)
    summary = inference_summary(
        args.backend, run.compute_ms, run.wall_s, run.files, summary_args(args), compute_stats=run.compute_stats
    )
    summary.update(run.extra)
    summary.update(inference_precision=backend.inference_precision, precision_evidence=backend.precision_evidence)
    write_json(summary_path, summary)
    # printed rounded as the tables are (summary.json keeps the full figures)
    mean_ms, throughput = summary["compute_time"].get("mean"), summary.get("throughput")
    LOG.info(
        "%d images at %s, compute %s ms/image (%s images/s), end to end %.3f images/s",
        summary["num_images"],
        summary["inference_precision"],
        "n/a" if mean_ms is None else f"{mean_ms:.1f}",
        "n/a" if throughput is None else f"{throughput:.3f}",
        summary["end_to_end"]["images_per_s"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
