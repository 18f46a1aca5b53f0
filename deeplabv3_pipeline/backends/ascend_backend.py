"""Ascend NPUs: the guide's procedure. ATC compiles the simplified ONNX into one ``.om`` per
``ascend.soc_versions`` (rule atc), and ais_bench runs the first one as a separate program over a
staged folder of the job's ``.bin`` files; its outputs and summary are mapped to the common layout.

The command lines are built in :mod:`deeplabv3_pipeline.ascend` (no CANN needed to build or show them).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
import time
from argparse import ArgumentParser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifacts, ascend
from ..artifacts import Step
from ..errors import UserError
from .base import BackendSpec, Config
from .files import FileRun

LOG = logging.getLogger(__name__)
# fp16 first: ATC's default precision_mode is force_fp16, so the guide's 79.06 / 79.12 are fp16 figures.
PRECISIONS = ("fp16", "fp32")


class AscendBackend:
    """An ``.om`` run by ais_bench; what ATC was asked for is its precision (an .om cannot be read back here)."""

    name = "ascend"

    def __init__(self, model: Path, precision: str, device: int, ais_bench: str) -> None:
        self.model = model
        self.device = device
        self.ais_bench = ais_bench
        record = ascend.precision_record(precision)
        self.inference_precision = record["inference_precision"]
        self.precision_evidence = record["precision_evidence"]
        self.input_shape = (0, 0)  # ais_bench reads it from the .om

    def run(self, image: np.ndarray) -> np.ndarray:
        raise UserError("the ascend backend runs whole folders through ais_bench (infer.py), not single images")

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        """ais_bench over ``inputs``, staged as links (a job's files are a subset of the folder)."""
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".ais_bench-", dir=output.parent) as scratch:
            staged = Path(scratch) / "input"
            staged.mkdir()
            for path in inputs:
                (staged / path.name).symlink_to(path.resolve())
            dirname = "predictions"
            command = ascend.ais_bench_command(self.ais_bench, self.model, staged, Path(scratch), dirname, self.device)
            ascend.require_tool(command)
            LOG.info("running: %s", shlex.join(command))
            start = time.perf_counter()
            completed = subprocess.run(command, check=False)
            if completed.returncode != 0:
                raise UserError(f"ais_bench failed (exit {completed.returncode}); see its output above")
            ais_summary = ascend.collect_ais_bench_output(Path(scratch), dirname, output)
            wall = time.perf_counter() - start
        return file_run(ais_summary, wall)


def file_run(ais_summary: dict, wall_seconds: float) -> FileRun:
    """ais_bench's summary as a :class:`FileRun`: aggregate compute statistics (ais_bench reports no
    per-image times), its H2D/D2H latencies, and its own throughput kept as it reported it."""
    outputs = ais_summary.get("_outputs", [])
    files = {name.removesuffix("_0.bin") + ".bin": name for name in outputs}
    extra = {key: ais_summary.get(key) for key in ("H2D_latency", "D2H_latency", "throughput")}
    return FileRun({}, files, wall_seconds, compute_stats=ais_summary.get("NPU_compute_time", {}), extra=extra)


def model_steps(precision: str, config: Config) -> list[Step]:
    """The .om of the first soc_version, at the precision (its folder: ATC's fp16 and fp32 differ)."""
    first_soc = config["ascend"]["soc_versions"][0]
    return [*artifacts.ONNX_STEPS, artifacts.ATC.format(soc=first_soc, precision=precision)]


def extra_targets(precision: str, config: Config) -> list[Step]:
    """An .om for every soc_version, also those not run here."""
    return [artifacts.ATC.format(soc=soc, precision=precision) for soc in config["ascend"]["soc_versions"]]


def infer_args(config: Config) -> list[str]:
    return ["--device", str(config["ascend"]["device"]), "--ais-bench", config["ascend"]["ais_bench"]]


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--ais-bench", default="python3 -m ais_bench", help="how to start ais_bench (ascend)")


def environment_problems(config: Config) -> list[str]:
    """atc and ais_bench must start here (CANN's tools)."""
    commands = (["atc"], shlex.split(config["ascend"]["ais_bench"]))
    return [problem for problem in map(ascend.missing_tool, commands) if problem]


def open_model(model: Path, precision: str, threads: int, options: Mapping[str, Any]) -> AscendBackend:
    return AscendBackend(
        model, precision, int(options.get("device") or 0), options.get("ais_bench") or "python3 -m ais_bench"
    )


SPEC = BackendSpec(
    name="ascend",
    summary="Ascend NPU: ATC .om per soc_version, run by ais_bench (CANN)",
    precisions=PRECISIONS,
    open=open_model,
    model_steps=model_steps,
    infer_args=infer_args,
    add_arguments=add_arguments,
    environment_problems=environment_problems,
    extra_targets=extra_targets,
    in_process=False,
    cpu=False,
)
