#!/usr/bin/env python3
"""Run the model over preprocessed ``.bin`` files, with a command line that mirrors ais_bench.

    python scripts/infer.py --model results/models/deeplabv3_sim_bs1.onnx --input results/prep_dataset/demo/val \\
        --output results/infer/demo/val/onnxruntime --outfmt BIN --backend onnxruntime

Each input ``{stem}.bin`` gives ``{stem}_0.bin`` (raw int64 1x1xHxW class ids), ais_bench's
naming, and a summary json with ais_bench's fields (``NPU_compute_time``, ``throughput``: compute
only) plus end-to-end wall time. The next input is read while the current one computes, and
outputs are written in the background, so I/O stays off the compute path.
``--backend ascend`` runs ais_bench itself on an ``.om`` model and maps its output.

``--input`` takes folders (every ``*.bin`` directly in it, as ais_bench reads them) or files; the
workflow passes exactly the files of one job. ``--precision`` is what must run: the backend pins
it, and the run stops if the runtime reports another (``inference_precision`` in the summary).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from deeplabv3_pipeline import ascend
from deeplabv3_pipeline.backends import (
    IN_PROCESS_BACKENDS,
    PRECISIONS,
    Backend,
    check_precision,
    default_precision,
    open_checked,
)
from deeplabv3_pipeline.binio import list_bins, read_bin, write_atomic, write_json, write_npy
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.progress import progress
from deeplabv3_pipeline.timing import inference_summary

LOG = logging.getLogger("infer")
BACKENDS = (*IN_PROCESS_BACKENDS, "ascend")


def list_inputs(sources: list[Path]) -> list[Path]:
    """The input files (``binio.list_bins``); a stem given twice is an error (outputs are named by stem)."""
    inputs = list_bins(sources)
    stems = [path.stem for path in inputs]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise UserError(f"input {repeated[0]}.bin is given twice: its outputs would overwrite each other")
    return inputs


def output_name(input_path: Path, outfmt: str) -> str:
    """ais_bench's naming: ``{input stem}_{output index}.{bin|npy}``; this model has one output."""
    return f"{input_path.stem}_0.{outfmt.lower()}"


def save_output(array: np.ndarray, path: Path) -> None:
    (write_npy if path.suffix == ".npy" else write_atomic)(path, array)


def run_in_process(
    backend: Backend, inputs: list[Path], output: Path, outfmt: str, warmup: int
) -> tuple[dict[str, float], dict[str, str]]:
    """Compute every input; returns per-input compute ms (model call only) and output file names."""
    height, width = backend.input_shape
    shape = (1, 3, height, width)
    compute_ms: dict[str, float] = {}
    files: dict[str, str] = {}
    output.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        pending_read: Future = reader.submit(read_bin, inputs[0], np.float32, shape)
        for _ in range(warmup):
            backend.run(pending_read.result())
        writes: list[Future] = []
        for index, path in enumerate(progress(inputs, len(inputs), f"infer[{backend.name}]")):
            image = pending_read.result()
            if index + 1 < len(inputs):
                pending_read = reader.submit(read_bin, inputs[index + 1], np.float32, shape)
            start = time.perf_counter()
            prediction = backend.run(image)
            compute_ms[path.name] = (time.perf_counter() - start) * 1000.0
            if prediction.shape != (1, 1, height, width):
                raise UserError(
                    f"backend {backend.name} returned shape {prediction.shape}, expected (1,1,{height},{width})"
                )
            files[path.name] = output_name(path, outfmt)
            writes.append(
                writer.submit(save_output, prediction.astype(np.int64, copy=False), output / files[path.name])
            )
        for write in writes:
            write.result()
    return compute_ms, files


def run_ascend(args: argparse.Namespace, inputs: list[Path]) -> dict:
    """ais_bench over ``inputs`` (staged as links when a shard is a subset), mapped to the common layout."""
    with tempfile.TemporaryDirectory(prefix=".ais_bench-", dir=args.output.parent) as scratch:
        staged = Path(scratch) / "input"
        staged.mkdir()
        for path in inputs:
            (staged / path.name).symlink_to(path.resolve())
        dirname = "predictions"
        command = ascend.ais_bench_command(args.ais_bench, args.model, staged, Path(scratch), dirname, args.device)
        ascend.require_tool(command)
        LOG.info("running: %s", " ".join(command))
        start = time.perf_counter()
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            raise UserError(f"ais_bench failed (exit {completed.returncode}); see its output above")
        ais_summary = ascend.collect_ais_bench_output(Path(scratch), dirname, args.output)
        wall = time.perf_counter() - start
    summary = ascend.common_summary(ais_summary, wall, summary_args(args))
    return summary | ascend.precision_record(args.precision)


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
        help=".onnx (onnxruntime, openvino, tensorrt), .pth (pytorch), .om (ascend)",
    )
    parser.add_argument("--input", type=Path, nargs="+", required=True, help=".bin files or folders of them")
    parser.add_argument("--output", type=Path, required=True, help="folder for {stem}_0.bin")
    parser.add_argument("--outfmt", choices=("BIN", "NPY"), default="BIN")
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime")
    parser.add_argument("--summary", type=Path, help="summary json (default: <output>/summary.json)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the runtime (0: its default)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (as ais_bench)")
    parser.add_argument("--model-config", help="mmseg config (pytorch backend)")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), help="pytorch backend")
    parser.add_argument("--providers", nargs="+", help="onnxruntime execution providers, in order")
    parser.add_argument(
        "--precision",
        choices=sorted({p for precisions in PRECISIONS.values() for p in precisions}),
        default=None,
        help="what must run (default: fp32; ascend: fp16, ATC's default); "
        + "; ".join(f"{name}: {', '.join(p)}" for name, p in PRECISIONS.items()),
    )
    parser.add_argument("--device", type=int, default=0, help="NPU id (ascend)")
    parser.add_argument("--ais-bench", default="python3 -m ais_bench", help="how to start ais_bench (ascend)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.precision = args.precision or default_precision(args.backend)
    check_precision(args.backend, args.precision)
    inputs = list_inputs(args.input)
    summary_path = args.summary or args.output / "summary.json"
    if args.backend == "ascend":
        summary = run_ascend(args, inputs)
    else:
        backend = open_checked(args)
        start = time.perf_counter()
        compute_ms, files = run_in_process(backend, inputs, args.output, args.outfmt, args.warmup)
        summary = inference_summary(args.backend, compute_ms, time.perf_counter() - start, files, summary_args(args))
        summary.update(inference_precision=backend.inference_precision, precision_evidence=backend.precision_evidence)
    write_json(summary_path, summary)
    LOG.info(
        "%d images at %s, compute %.1f ms/image (%.2f images/s), end to end %.2f images/s",
        summary["num_images"],
        summary["inference_precision"],
        summary["compute_time"]["mean"],
        summary["throughput"],
        summary["end_to_end"]["images_per_s"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
