"""Fake ais_bench for tests: ais_bench's CLI and output layout, ONNX Runtime underneath (see README.md)."""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser()
for flag in ("--model", "--input", "--output", "--output_dirname", "--outfmt", "--batchsize", "--device"):
    parser.add_argument(flag, required=True)
args = parser.parse_args()
onnx_model = json.loads(Path(args.model).read_text())["onnx"]
session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
shape = session.get_inputs()[0].shape
folder = Path(args.output) / args.output_dirname
folder.mkdir(parents=True)
times = []
for path in sorted(Path(args.input).glob("*.bin")):
    image = np.fromfile(path, dtype=np.float32).reshape(shape)
    start = time.perf_counter()
    result = session.run(None, {"input": image})[0]
    times.append((time.perf_counter() - start) * 1000)
    result.tofile(folder / f"{path.stem}_0.bin")
stats = {
    "min": min(times),
    "max": max(times),
    "mean": float(np.mean(times)),
    "median": float(np.median(times)),
    "percentile(99%)": float(np.percentile(times, 99)),
}
summary = {"NPU_compute_time": stats, "H2D_latency": stats, "D2H_latency": stats, "throughput": 1000 / stats["mean"]}
if os.environ.get("FAKE_AIS_BENCH_OLD_LAYOUT"):
    (folder / "sumary.json").write_text(json.dumps(summary))
else:
    (Path(args.output) / f"{args.output_dirname}_summary.json").write_text(json.dumps(summary))
