#!/usr/bin/env python3
"""CPU speed of the model: backends x precisions in one run, at one input shape.

    python scripts/benchmark.py --checkpoint checkpoints/deeplabv3_...pth --shape 256 512 --repeats 5 \\
        --output results/benchmark_256x512.json

Default variants: pytorch fp32 (eager, the checkpoint), onnxruntime fp32 and openvino fp32 (the
simplified ONNX), openvino bf16 (the same ONNX; only on a CPU with native BF16, avx512_bf16 or
amx_bf16), onnxruntime int8 (static QDQ ONNX from scripts/quantize_onnx.py's code) and
openvino int8 (NNCF IR; the QDQ ONNX run by OpenVINO when NNCF is not installed). The script
builds what it needs from ``--checkpoint`` (export, simplify, quantize: calibrated on the
benchmark's own images) or takes existing files (``--onnx``, ``--int8-onnx``, ``--openvino-int8``).
``--random-checkpoint`` makes an untrained one for a quick run: timings are valid, agreement figures
are not those of the real model, and the output says so.

Images: ``--images`` (PNG files or folders, e.g. Cityscapes leftImg8bit/val), resized to ``--shape``
when their size differs and normalised as preprocess.py does; by default the synthetic demo frames
(results/demo/..., or drawn afresh at the shape). Each variant runs in a fresh process: model
load, ``--warmup`` untimed runs, then ``--repeats`` passes over the images, each call timed.

Reported per variant: the precision the runtime says it computed (``inference_precision``, with
``precision_evidence``: OpenVINO's default on a BF16 CPU is bf16, so "fp32" is asked for and checked),
median s/image, images/s, GFLOP/s (the ONNX graph's operation count, see
``count_flops``, over the median time; int8 variants do the same work, so theirs is an effective
rate), percent of this machine's fp32 GEMM peak (the best of a large numpy and torch matmul,
measured in the same run with the same threads), the process's peak RSS, the speed-up over
PyTorch eager and pixel agreement with the fp32 reference. Plus the pipeline overhead of
scripts/infer.py (onnxruntime fp32): the share of its wall time that is not model compute.
No figure here is gated: other jobs on a shared machine make every number noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.cpu import bf16_features, cpu_model_name, has_bf16
from deeplabv3_pipeline.errors import UserError, run_cli

LOG = logging.getLogger("benchmark")
SCRIPTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024"
DEMO_IMAGES = Path("results/demo/cityscapes/leftImg8bit")
ALL_VARIANTS = (
    "pytorch:fp32",
    "onnxruntime:fp32",
    "openvino:fp32",
    "openvino:bf16",
    "onnxruntime:int8",
    "openvino:int8",
    "openvino:int8-qdq",
    "onnxruntime:fp32-winograd",
    "openvino:fp32-winograd",
)
# Operations per output element of the ops that are not GEMM-like (documented estimates).
ELEMENTWISE_OPS = {"Relu": 1, "Add": 1, "Mul": 1, "Sub": 1, "Div": 1, "Clip": 1, "Sigmoid": 4}
RESIZE_OPS_PER_OUTPUT = {"linear": 8, "nearest": 0, "cubic": 32}


@dataclass
class Variant:
    """One backend x precision and the file it runs."""

    name: str
    backend: str
    precision: str
    model: str = ""
    skipped: str = ""


@dataclass
class Timing:
    variant: str
    backend: str
    precision: str
    model: str
    status: str = "ok"
    reason: str = ""
    load_s: float = 0.0
    times_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    images_per_s: float | None = None
    gflops: float | None = None
    percent_of_gemm_peak: float | None = None
    rss_before_load_mb: float | None = None
    peak_rss_mb: float | None = None
    speedup_vs_pytorch: float | None = None
    pixel_agreement: float | None = None
    executed_gflops: float | None = None  # the operations the variant's own graph does (Winograd: fewer)
    inference_precision: str = ""  # what the runtime reports it computed (fp32, bf16, fp16, int8)
    precision_evidence: str = ""  # where that came from, in one line


# ---------------------------------------------------------------- operation count


def conv_ops(node: Any, shapes: dict[str, list[int]]) -> int:
    """2 x MACs (+ 1 per output element for a bias) of a Conv with known input/weight/output shapes."""
    out = shapes[node.output[0]]
    weight = shapes[node.input[1]]  # (Cout, Cin/group, kH, kW)
    macs = int(np.prod(out)) * int(np.prod(weight[1:]))
    bias = int(np.prod(out)) if len(node.input) > 2 and node.input[2] else 0
    return 2 * macs + bias


def node_ops(node: Any, shapes: dict[str, list[int]]) -> int:
    """Operations of one node: Conv/Gemm as 2 x MACs; pooling, resize, argmax and elementwise per element."""
    op = node.op_type
    attributes = {attribute.name: attribute for attribute in node.attribute}
    if op == "Conv":
        return conv_ops(node, shapes)
    if op == "MatMul":  # (..., M, K) @ (K, N): 2 x M x K x N per batch entry
        return 2 * int(np.prod(shapes[node.output[0]])) * shapes[node.input[0]][-1]
    out = int(np.prod(shapes.get(node.output[0], [0])))
    if op in ELEMENTWISE_OPS:
        return ELEMENTWISE_OPS[op] * out
    if op in ("MaxPool", "AveragePool"):
        return out * int(np.prod(attributes["kernel_shape"].ints))
    if op in ("GlobalAveragePool", "ArgMax", "ReduceMean"):
        return int(np.prod(shapes[node.input[0]]))
    if op == "Resize":
        mode = attributes["mode"].s.decode() if "mode" in attributes else "nearest"
        return RESIZE_OPS_PER_OUTPUT.get(mode, 8) * out
    return 0  # Concat, Reshape, Constant, ...: data movement, no arithmetic


def count_flops(model_path: Path) -> dict[str, Any]:
    """Operations per image of an fp32 ONNX model with static shapes, total and by op type."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    shapes: dict[str, list[int]] = {}
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        shapes[info.name] = [dim.dim_value for dim in info.type.tensor_type.shape.dim]
    for initializer in model.graph.initializer:
        shapes[initializer.name] = list(initializer.dims)
    by_op: dict[str, int] = {}
    for node in model.graph.node:
        by_op[node.op_type] = by_op.get(node.op_type, 0) + node_ops(node, shapes)
    return {"total": sum(by_op.values()), "by_op": {op: ops for op, ops in sorted(by_op.items()) if ops}}


# ---------------------------------------------------------------- machine


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def best_matmul_seconds(multiply: Any, repeats: int) -> float:
    multiply()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        multiply()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(threads: int, size: int = 4096, repeats: int = 3) -> dict[str, float]:
    """fp32 GEMM GFLOP/s of numpy and torch on size x size matrices (best of ``repeats``); ``peak`` = the max."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * size**3
    result = {
        "numpy": flops / best_matmul_seconds(lambda: a @ b, repeats) / 1e9,
        "torch": flops / best_matmul_seconds(lambda: torch.mm(ta, tb), repeats) / 1e9,
        "size": size,
    }
    result["peak"] = max(result["numpy"], result["torch"])
    return result


def best_peak(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Per library, the better of two GEMM measurements (other jobs on the machine only ever slow one down)."""
    return {key: max(first[key], second[key]) for key in first}


# ---------------------------------------------------------------- images


def find_pngs(sources: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(source.rglob("*.png"))
        elif source.is_file():
            found.append(source)
        else:
            raise UserError(f"image source {source} does not exist")
    if not found:
        raise UserError(f"no .png images in {', '.join(map(str, sources))}")
    return found


def default_image_sources(workdir: Path, shape: tuple[int, int], count: int) -> tuple[list[Path], str]:
    """The demo frames of the workflow when present, else synthetic frames drawn at ``shape``."""
    if DEMO_IMAGES.is_dir() and any(DEMO_IMAGES.rglob("*.png")):
        return [DEMO_IMAGES], f"synthetic demo frames ({DEMO_IMAGES})"
    from deeplabv3_pipeline.demo import make_demo_dataset

    make_demo_dataset(workdir / "demo", "val", count, shape, seed=0)
    return [workdir / "demo" / "leftImg8bit"], "synthetic demo frames drawn for this run"


def load_images(paths: Sequence[Path], shape: tuple[int, int]) -> list[np.ndarray]:
    """PNG -> float32 (1,3,H,W) as preprocess.py does, after a resize (cv2 INTER_AREA) when the size differs."""
    import cv2

    from deeplabv3_pipeline.transform import normalize, read_image

    images = []
    for path in paths:
        image = read_image(path)
        if image.shape[:2] != tuple(shape):
            image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        images.append(normalize(image))
    return images


def write_bins(images: Sequence[np.ndarray], names: Sequence[str], folder: Path) -> list[Path]:
    from deeplabv3_pipeline.binio import write_atomic

    paths = [folder / f"{Path(name).stem}.bin" for name in names]
    for path, image in zip(paths, images, strict=True):
        write_atomic(path, image)
    return paths


# ---------------------------------------------------------------- models


def run_stage(script: str, *args: object) -> None:
    """A stage CLI in its own process (its memory does not count in this one's peak RSS)."""
    command = [sys.executable, str(SCRIPTS / script), *map(str, args)]
    LOG.info("running %s", " ".join(command[1:]))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise UserError(f"{script} failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")


def build_fp32(checkpoint: Path, model_config: str, shape: tuple[int, int], folder: Path) -> Path:
    exported, simplified = folder / "deeplabv3.onnx", folder / "deeplabv3_sim_bs1.onnx"
    run_stage("export_onnx.py", model_config, "--checkpoint", checkpoint, "--output-file", exported, "--shape", *shape)
    run_stage("simplify_onnx.py", exported, simplified, "--input-shape", f"1,3,{shape[0]},{shape[1]}")
    exported.unlink()
    return simplified


def build_winograd(fp32: Path, output: Path, tile: int) -> Path:
    run_stage("winograd_onnx.py", fp32, output, "--tile", tile, "--check-images", 0)
    return output


def build_int8(fp32: Path, output: Path, bins: Sequence[Path], count: int, engine: str) -> Path:
    run_stage(
        "quantize_onnx.py",
        fp32,
        output,
        "--calibration-data",
        *bins,
        "--calibration-images",
        count,
        "--engine",
        engine,
        "--check-images",
        0,
    )
    return output


def nncf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def default_variants(bf16: bool | None = None) -> list[str]:
    """Every backend at fp32, openvino bf16 where the CPU computes bf16 natively (``bf16``: None = this CPU's),
    both int8 models and the OpenVINO Winograd model."""
    int8_openvino = "openvino:int8" if nncf_available() else "openvino:int8-qdq"
    bf16_variants = ["openvino:bf16"] if (has_bf16() if bf16 is None else bf16) else []
    return [
        "pytorch:fp32",
        "onnxruntime:fp32",
        "openvino:fp32",
        *bf16_variants,
        "onnxruntime:int8",
        int8_openvino,
        "openvino:fp32-winograd",
    ]


def requested_precision(variant_precision: str) -> str:
    """The precision open_backend is asked for: a variant's precision without its model tag (int8-qdq: int8)."""
    return variant_precision.split("-")[0]


# ---------------------------------------------------------------- timing (in a fresh process per variant)


def memory_mb(field: str) -> float:
    """A /proc/self/status memory figure in MB: VmHWM (peak RSS of this process image) or VmRSS (now).

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a child would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def time_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one variant, warm up, time ``repeats`` passes over the images; save the first pass's predictions."""
    from deeplabv3_pipeline.backends import open_backend

    images = list(np.load(spec["images"]))
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    backend = open_backend(
        spec["backend"],
        Path(spec["model"]),
        threads=spec["threads"],
        model_config=spec["model_config"],
        input_shape=tuple(spec["shape"]),
        precision=spec["precision"],
    )
    load_s = time.perf_counter() - start
    for _ in range(spec["warmup"]):
        backend.run(images[0])
    times, predictions = [], []
    for repeat in range(spec["repeats"]):
        for image in images:
            start = time.perf_counter()
            prediction = backend.run(image)
            times.append(time.perf_counter() - start)
            if repeat == 0:
                predictions.append(prediction)
    np.save(spec["predictions"], np.stack(predictions))
    return {
        "load_s": load_s,
        "times_s": times,
        "rss_before_load_mb": before,
        "peak_rss_mb": memory_mb("VmHWM"),
        "inference_precision": backend.inference_precision,
        "precision_evidence": backend.precision_evidence,
    }


def run_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """``time_variant`` in a freshly spawned process, so that peak RSS and caches are the variant's own."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(time_variant, spec).result()


def summarise(timing: Timing, flops: float, peak_gflops: float) -> Timing:
    timing.median_s = float(np.median(timing.times_s))
    timing.images_per_s = 1.0 / timing.median_s
    timing.gflops = flops / timing.median_s / 1e9
    timing.percent_of_gemm_peak = 100.0 * timing.gflops / peak_gflops if peak_gflops else None
    return timing


def add_comparisons(timings: list[Timing], predictions: dict[str, np.ndarray]) -> None:
    """Speed-up over pytorch eager and pixel agreement with the fp32 reference (pytorch, else onnxruntime)."""
    by_name = {timing.variant: timing for timing in timings if timing.status == "ok"}
    reference = next((name for name in ("pytorch:fp32", "onnxruntime:fp32") if name in predictions), None)
    eager = by_name.get("pytorch:fp32")
    for timing in by_name.values():
        if eager and timing.median_s:
            timing.speedup_vs_pytorch = eager.median_s / timing.median_s
        if reference:
            timing.pixel_agreement = float(np.mean(predictions[timing.variant] == predictions[reference]))


# ---------------------------------------------------------------- pipeline overhead


def pipeline_overhead(model: Path, bins: Sequence[Path], threads: int, workdir: Path) -> dict[str, Any]:
    """scripts/infer.py (onnxruntime fp32, --warmup 0) over ``bins``: the share of its wall time not in the model."""
    inputs = workdir / "pipeline_input"
    inputs.mkdir(exist_ok=True)
    for path in bins:
        shutil.copy(path, inputs / path.name)
    output, summary = workdir / "pipeline_output", workdir / "pipeline_summary.json"
    start = time.perf_counter()
    run_stage(
        "infer.py",
        "--backend",
        "onnxruntime",
        "--model",
        model,
        "--input",
        inputs,
        "--output",
        output,
        "--summary",
        summary,
        "--threads",
        threads,
        "--warmup",
        0,
    )
    process_s = time.perf_counter() - start
    data = json.loads(summary.read_text())
    return overhead_from_summary(data, process_s)


def overhead_from_summary(summary: dict[str, Any], process_s: float | None = None) -> dict[str, Any]:
    """From an infer summary.json: end_to_end wall vs the sum of per_image_compute_ms."""
    wall = summary["end_to_end"]["wall_s"]
    compute = sum(summary["per_image_compute_ms"].values()) / 1000.0
    return {
        "images": summary["num_images"],
        "end_to_end_wall_s": wall,
        "compute_s": compute,
        "non_compute_s": wall - compute,
        "non_compute_fraction": (wall - compute) / wall if wall else None,
        "process_wall_s": process_s,
        "note": "wall = reading, model calls and writing, after the model is loaded (no warm-up run); "
        "process wall adds interpreter start, imports and session creation",
    }


# ---------------------------------------------------------------- output


def format_table(timings: Sequence[Timing]) -> str:
    """A Markdown table of the timed variants, then one line per variant that did not run."""
    header = (
        "variant",
        "computed in",
        "s/image",
        "images/s",
        "GFLOP/s",
        "% GEMM peak",
        "executed GFLOP/s",
        "peak RSS MB",
        "vs eager",
        "agreement",
    )
    rows = [header]
    for t in timings:
        if t.status == "ok":
            rows.append(
                (
                    t.variant,
                    t.inference_precision or "?",
                    f"{t.median_s:.3f}",
                    f"{t.images_per_s:.3g}",
                    f"{t.gflops:.1f}",
                    f"{t.percent_of_gemm_peak:.1f}" if t.percent_of_gemm_peak is not None else "-",
                    f"{t.executed_gflops:.1f}" if t.executed_gflops is not None else "-",
                    f"{t.peak_rss_mb:.0f}",
                    f"{t.speedup_vs_pytorch:.2f}x" if t.speedup_vs_pytorch else "-",
                    f"{t.pixel_agreement:.4f}" if t.pixel_agreement is not None else "-",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(size) for cell, size in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (size + 2) for size in widths) + "|")
    lines += [f"{t.variant}: {t.status} ({t.reason})" for t in timings if t.status != "ok"]
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    from deeplabv3_pipeline.binio import write_atomic

    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(256, 512))
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    parser.add_argument("--num-images", type=int, default=2, help="images per pass (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per runtime (0: every usable core)")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=ALL_VARIANTS,
        help="default: all but onnxruntime:fp32-winograd, openvino:bf16 only on a CPU with native BF16, and "
        "openvino:int8 (NNCF) or else openvino:int8-qdq",
    )
    parser.add_argument("--checkpoint", type=Path, help="mmseg checkpoint (builds every model it needs)")
    parser.add_argument("--random-checkpoint", action="store_true", help="an UNTRAINED checkpoint, for a quick run")
    parser.add_argument("--model-config", default=DEFAULT_CONFIG, help="mmseg config of the checkpoint")
    parser.add_argument("--onnx", type=Path, help="existing fp32 simplified ONNX at --shape (skips the export)")
    parser.add_argument("--int8-onnx", type=Path, help="existing int8 QDQ ONNX (skips the quantization)")
    parser.add_argument("--openvino-int8", type=Path, help="existing NNCF int8 IR .xml")
    parser.add_argument("--winograd-onnx", type=Path, help="existing Winograd ONNX (scripts/winograd_onnx.py)")
    parser.add_argument("--winograd-tile", type=int, choices=(2, 4), default=4, help="for the Winograd model it builds")
    parser.add_argument("--images", type=Path, nargs="+", help="PNG files or folders (default: demo frames)")
    parser.add_argument("--calibration-images", type=int, default=8, help="for the int8 models it builds")
    parser.add_argument("--pipeline-images", type=int, default=3, help="bins for the infer.py overhead (0: skip)")
    parser.add_argument("--workdir", type=Path, help="keep built models and predictions here (default: temporary)")
    parser.add_argument("--output", type=Path, help="JSON report")
    return parser.parse_args(argv)


def resolve_checkpoint(args: argparse.Namespace, workdir: Path) -> tuple[Path | None, str]:
    if args.checkpoint:
        if not args.checkpoint.is_file():
            raise UserError(f"checkpoint {args.checkpoint} does not exist")
        synthetic = synthetic_note(args.checkpoint)
        if synthetic:
            LOG.warning(
                "*** %s is an UNTRAINED checkpoint: agreement figures are not the real model's", args.checkpoint
            )
            return args.checkpoint, f"{args.checkpoint}: RANDOM untrained checkpoint ({synthetic})"
        return args.checkpoint, str(args.checkpoint)
    if args.random_checkpoint:
        from deeplabv3_pipeline.mmseg_model import make_random_checkpoint

        LOG.warning("*** RANDOM (untrained) checkpoint: timings are valid, agreement figures are not the real model's")
        path = make_random_checkpoint(args.model_config, workdir / "random_checkpoint.pth", seed=0)
        return path, "RANDOM untrained checkpoint (make_random_checkpoint, seed 0): timings only"
    if args.onnx:
        return None, "none (existing ONNX given; the pytorch variant is skipped)"
    raise UserError("give --checkpoint (or --onnx), or --random-checkpoint for a quick run with an untrained model")


def synthetic_note(checkpoint: Path) -> str:
    """The ``meta.synthetic`` note that make_random_checkpoint writes ('' for a real checkpoint)."""
    import torch

    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # unreadable here: the pytorch variant and the export report it properly
        return ""
    meta = loaded.get("meta", {}) if isinstance(loaded, dict) else {}
    return str(meta.get("synthetic", "")) if isinstance(meta, dict) else ""


def plan_variants(args: argparse.Namespace, checkpoint: Path | None, models: dict[str, Path]) -> list[Variant]:
    """The variants to time and their model files; what cannot run says why."""
    plan = []
    for name in args.variants or default_variants():
        backend, precision = name.split(":")
        variant = Variant(name, backend, precision, model_for(name, checkpoint, models))
        if not variant.model:
            variant.skipped = "no checkpoint" if backend == "pytorch" else "NNCF is not installed (pip install nncf)"
        elif precision == "bf16" and not has_bf16():
            variant.skipped = f"this CPU ({cpu_model_name()}) has no native BF16 (avx512_bf16 or amx_bf16)"
        plan.append(variant)
    return plan


def model_for(name: str, checkpoint: Path | None, models: dict[str, Path]) -> str:
    """The file a variant runs: the checkpoint (pytorch), the NNCF IR, the QDQ ONNX, the Winograd or the fp32 ONNX."""
    if name == "pytorch:fp32":
        return str(checkpoint or "")
    key = {"openvino:int8": "int8-ov", "onnxruntime:int8": "int8", "openvino:int8-qdq": "int8"}.get(name, "fp32")
    if name.endswith(":fp32-winograd"):
        key = "winograd"
    return str(models.get(key, ""))


def prepare_models(
    args: argparse.Namespace, checkpoint: Path | None, bins: list[Path], workdir: Path, wanted: set[str]
) -> dict[str, Path]:
    shape = tuple(args.shape)
    fp32 = args.onnx or build_fp32(checkpoint, args.model_config, shape, workdir)  # type: ignore[arg-type]
    from deeplabv3_pipeline.quantize import model_input

    if model_input(fp32)[1] != shape:
        raise UserError(f"{fp32} has input {model_input(fp32)[1]}, not --shape {shape}")
    models = {"fp32": fp32}
    count = min(args.calibration_images, len(bins))
    if wanted & {"onnxruntime:int8", "openvino:int8-qdq"}:
        models["int8"] = args.int8_onnx or build_int8(
            fp32, workdir / "deeplabv3_sim_bs1_int8.onnx", bins, count, "onnxruntime"
        )
    if wanted & {"onnxruntime:fp32-winograd", "openvino:fp32-winograd"}:
        models["winograd"] = args.winograd_onnx or build_winograd(
            fp32, workdir / "deeplabv3_sim_bs1_winograd.onnx", args.winograd_tile
        )
    if "openvino:int8" in wanted and (args.openvino_int8 or nncf_available()):
        models["int8-ov"] = args.openvino_int8 or build_int8(
            fp32, workdir / "deeplabv3_sim_bs1_int8_ov.xml", bins, count, "openvino"
        )
    return models


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1 or args.num_images < 1:
        raise UserError("--repeats and --num-images must be at least 1")
    shape = tuple(args.shape)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="deeplabv3-benchmark-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        checkpoint, checkpoint_note = resolve_checkpoint(args, workdir)
        sources, images_note = (
            (args.images, "given images") if args.images else default_image_sources(workdir, shape, args.num_images)
        )
        pngs = find_pngs(sources)
        chosen = pngs[: max(args.num_images, args.calibration_images, args.pipeline_images)]
        images = load_images(chosen, shape)
        bins = write_bins(images, [path.name for path in chosen], workdir / "bins")
        wanted = set(args.variants or default_variants())
        models = prepare_models(args, checkpoint, bins, workdir, wanted)
        timed_images = images[: args.num_images]
        np.save(workdir / "images.npy", np.concatenate(timed_images)[:, np.newaxis])
        flops = count_flops(models["fp32"])
        executed = {"winograd": count_flops(models["winograd"])["total"]} if "winograd" in models else {}
        peak = gemm_peak(args.threads)
        LOG.info("%.2f GFLOP per image; fp32 GEMM peak %.1f GFLOP/s", flops["total"] / 1e9, peak["peak"])
        timings, predictions = [], {}
        for variant in plan_variants(args, checkpoint, models):
            timing = Timing(variant.name, variant.backend, variant.precision, variant.model)
            if variant.skipped:
                timing.status, timing.reason = "skipped", variant.skipped
                timings.append(timing)
                continue
            LOG.info("timing %s (%s)", variant.name, timing.model)
            spec = {
                "backend": variant.backend,
                "model": timing.model,
                "threads": args.threads,
                "model_config": args.model_config,
                "shape": shape,
                "precision": requested_precision(variant.precision),
                "warmup": args.warmup,
                "repeats": args.repeats,
                "images": str(workdir / "images.npy"),
                "predictions": str(workdir / f"predictions_{variant.name.replace(':', '_')}.npy"),
            }
            for key, value in run_variant(spec).items():
                setattr(timing, key, value)
            if timing.inference_precision != spec["precision"]:
                LOG.warning(
                    "%s computed %s, not %s: %s",
                    variant.name,
                    timing.inference_precision,
                    spec["precision"],
                    timing.precision_evidence,
                )
            predictions[variant.name] = np.load(spec["predictions"])
            timings.append(summarise(timing, flops["total"], peak["peak"]))
            if variant.precision == "fp32-winograd":
                timing.executed_gflops = executed["winograd"] / timing.median_s / 1e9
            elif variant.precision in ("fp32", "bf16"):  # the same graph as the count, in another float format
                timing.executed_gflops = timing.gflops
        add_comparisons(timings, predictions)
        peak = best_peak(peak, gemm_peak(args.threads))  # measured again after the variants: the busier moment loses
        for timing in timings:
            if timing.status == "ok":
                summarise(timing, flops["total"], peak["peak"])
        overhead = (
            pipeline_overhead(models["fp32"], bins[: args.pipeline_images], args.threads, workdir)
            if args.pipeline_images
            else None
        )
        report = {
            "shape": list(shape),
            "threads": args.threads or usable_cores(),
            "warmup": args.warmup,
            "repeats": args.repeats,
            "images": [path.name for path in chosen[: args.num_images]],
            "images_source": images_note,
            "checkpoint": checkpoint_note,
            "random_checkpoint": "RANDOM" in checkpoint_note,
            "machine": {
                "cpu": cpu_model_name(),
                "bf16_features": bf16_features(),
                "usable_cores": usable_cores(),
                "gemm_fp32_gflops": peak,
            },
            "flops_per_image": flops,
            "executed_flops_per_image": executed,
            "flop_counter": "ONNX graph of the fp32 model with inferred shapes: Conv 2 x MACs + 1 per output for "
            "the bias; Relu/Add 1 per output element; MaxPool kernel size per output; GlobalAveragePool/ArgMax 1 "
            "per input element; bilinear Resize 8 per output element; Concat 0",
            "models": {key: str(value) for key, value in models.items()},
            "results": [asdict(timing) for timing in timings],
            "pipeline_overhead": overhead,
            "notes": [
                "median over repeats x images of single-image calls, after warm-up; each variant in a fresh process",
                "int8 GFLOP/s counts the same operations as fp32 (an effective rate); % of the fp32 GEMM peak likewise",
                "inference_precision is what each runtime reports it computed (OpenVINO: the compiled model's "
                "INFERENCE_PRECISION_HINT, set explicitly; int8: quantized ops int8, the rest fp32); bf16 GFLOP/s "
                "is compared with the fp32 GEMM peak all the same",
                "fp32-winograd GFLOP/s likewise counts the direct model's operations (an effective rate); "
                "executed_gflops is the rate of the operations its own graph does (MatMul 2 x M x K x N, "
                "the transforms' Add/Sub/Mul 1 per element)",
                "figures are noisy where other jobs share the machine: compare only within one run",
            ],
        }
        print(format_table(timings))
        if overhead:
            print(
                f"infer.py onnxruntime fp32 over {overhead['images']} images: {overhead['non_compute_fraction']:.1%} "
                "of wall time outside the model"
            )
        if args.output:
            write_json(args.output, report)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
