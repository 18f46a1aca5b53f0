#!/usr/bin/env python3
"""ONNX -> TensorRT engine, with its build record (JSON) beside it, on this machine's NVIDIA GPU.

    python scripts/build_engine.py results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        results/models/deeplabv3_bs1_fp32.engine --precision fp32

An engine runs only with the TensorRT version and on the GPU model that built it. ``--precision``:
fp32 (TF32 off), fp16 (TensorRT 10: the FP16 builder flag; TensorRT 11 builds strongly typed networks
only and needs an fp16 ONNX: scripts/convert_fp16.py's, rule convert_fp16), int8 (the Q/DQ ONNX of rule
quantize_tensorrt). The record (default ``<engine stem>.json``) records the settings, the TensorRT, GPU
and CUDA versions, the network mode and builder flags, the engine's inputs and outputs, and the source
ONNX's sha256; it is written after the engine, and the tensorrt backend reads it. Needs envs/requirements-gpu.txt.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.backends.tensorrt.engine import (
    PRECISIONS,
    EngineSettings,
    build_engine,
    environment_problems,
)
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json
from deeplabv3_pipeline.planning.artifacts import record_path

LOG = logging.getLogger("build_engine")


def settings_from_args(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(
        precision=args.precision,
        workspace_gib=args.workspace_gib,
        builder_optimization_level=args.optimization_level,
        tf32=args.tf32,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx_model", type=Path, help="ONNX model with a fixed input shape (deeplabv3_sim_bs1.onnx)")
    parser.add_argument("engine", type=Path, help="the serialized engine to write (.engine)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--workspace-gib", type=int, default=8, help="builder workspace limit (default 8 GiB)")
    parser.add_argument("--optimization-level", type=int, default=3, help="builder optimization level 0..5 (default 3)")
    parser.add_argument("--tf32", action="store_true", help="let fp32 layers use TF32 (off: fp32 stays fp32)")
    parser.add_argument("--device", type=int, default=0, help="CUDA device to build on (default 0)")
    parser.add_argument("--record", type=Path, help="build record JSON (default: the engine's name with .json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    problems = environment_problems()
    if problems:
        raise UserError("cannot build TensorRT engines here: " + "; ".join(problems))
    record_file = args.record or record_path(args.engine)
    # A record must never describe an older engine: drop it before the engine is replaced.
    record_file.unlink(missing_ok=True)
    record = build_engine(args.onnx_model, args.engine, settings, device=args.device)
    write_json(record_file, record)
    LOG.info(
        "built %s in %.1f s: %.1f MB, %s, %s with flags %s (TensorRT %s on %s); record %s",
        args.engine,
        record["build_seconds"],
        record["engine_bytes"] / 1e6,
        settings.precision,
        record["network_mode"],
        json.dumps(record["builder_flags"]),
        record["tensorrt_version"],
        record["gpu"]["name"],
        record_file,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
