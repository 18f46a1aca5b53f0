#!/usr/bin/env python3
"""What a per-layer comparison costs beside plain inference: time and peak memory of compare_layers.py on
one image, with one plain inference of each of its two models timed in the same run.

    python scripts/bench_compare_layers.py --input-shape 1024 2048 --threads 2 \\
        --reference results/demo/checkpoints/deeplabv3.pth --reference-backend pytorch \\
        --model-config deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024 \\
        --model results/models/deeplabv3/deeplabv3_sim_bs1_int8.onnx --backend onnxruntime --precision int8 \\
        --graph results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        --input results/prep_dataset/demo/val/demoburg_000000_000019_leftImg8bit.bin --output /tmp/layers

Each plain inference is the backend's own ``run`` on the image after one warm-up call (as the benchmark
times), each in a process of its own, as is the comparison (its peak RSS is the process's own, from
its JSON). Prints a Markdown table: seconds of each, the comparison's ratio to the two inferences
together (the target: at most 3x) and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.report.tables import markdown_table

SCRIPTS = Path(__file__).resolve().parent


def plain_inference_s(
    backend: str, model: str, precision: str, flags: list[str], image: str, shape: list[str]
) -> float:
    """Seconds of one ``run`` of the model on the image after one warm-up call, in a process of its own."""
    code = (
        "import sys, time, numpy as np\n"
        "from deeplabv3_pipeline.backends import open_checked, add_backend_arguments\n"
        "import argparse\n"
        "parser = argparse.ArgumentParser(); add_backend_arguments(parser); parser.add_argument('--model')\n"
        "parser.add_argument('--image'); args = parser.parse_args(sys.argv[1:])\n"
        "backend = open_checked(args)\n"
        "image = np.fromfile(args.image, dtype=np.float32).reshape(1, 3, *backend.input_shape)\n"
        "backend.run(image); start = time.perf_counter(); backend.run(image)\n"
        "print(time.perf_counter() - start)\n"
    )
    command = [sys.executable, "-c", code, "--backend", backend, "--precision", precision, "--model", model]
    command += ["--image", image, "--input-shape", *shape, *flags]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--reference-backend", default="onnxruntime")
    parser.add_argument("--reference-precision", default="fp32")
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--input", required=True)
    parser.add_argument("--input-shape", nargs=2, required=True)
    parser.add_argument("--output", required=True)
    args, flags = parser.parse_known_args(argv)  # the rest: backend and compare_layers.py flags
    option_flags = []
    iterator = iter(flags)
    for flag in iterator:  # --graph takes a value that is not a backend option
        if flag == "--graph":
            next(iterator)
        else:
            option_flags.append(flag)
    reference_s = plain_inference_s(
        args.reference_backend, args.reference, args.reference_precision, option_flags, args.input, args.input_shape
    )
    model_s = plain_inference_s(args.backend, args.model, args.precision, option_flags, args.input, args.input_shape)
    compare = [sys.executable, str(SCRIPTS / "compare_layers.py"), "--reference", args.reference]
    compare += ["--reference-backend", args.reference_backend, "--reference-precision", args.reference_precision]
    compare += ["--model", args.model, "--backend", args.backend, "--precision", args.precision]
    compare += ["--input", args.input, "--input-shape", *args.input_shape, "--output", args.output, *flags]
    start = time.perf_counter()
    subprocess.run(compare, check=True, capture_output=True)
    compare_s = time.perf_counter() - start
    record = json.loads(Path(args.output).with_suffix(".json").read_text())
    held = record["held"]
    streamed = "model" if held["side"] == "reference" else "reference"
    rows = [
        [f"{args.reference_backend}-{args.reference_precision} inference", f"{reference_s:.1f}", ""],
        [f"{args.backend}-{args.precision} inference", f"{model_s:.1f}", ""],
        ["the comparison (whole process)", f"{compare_s:.1f}", f"{compare_s / (reference_s + model_s):.2f}x"],
        [f"  its {held['side']}'s dump (kept in {held['in']})", f"{record['seconds']['held']:.1f}", ""],
        [f"  its {streamed}'s dump, compared as it comes", f"{record['seconds']['streamed_and_compared']:.1f}", ""],
    ]
    print("\n".join(markdown_table(["step", "s", "ratio to the two inferences"], rows)))
    print(f"\npeak RSS of the comparison: {record['peak_rss_mb']:.0f} MB; {len(record['rows'])} tensors compared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
