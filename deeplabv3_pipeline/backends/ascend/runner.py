"""The Ascend wrapper: ais_bench runs an ``.om`` as a separate program over a staged folder of the
job's ``.bin`` files; its outputs and summary are mapped to the common layout (commands: :mod:`.atc`).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from ...errors import UserError
from ..files import FileRun
from . import atc

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
        record = atc.precision_record(precision)
        self.inference_precision = record["inference_precision"]
        self.precision_evidence = record["precision_evidence"]

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        """ais_bench over ``inputs``, staged as links (a job's files are a subset of the folder)."""
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".ais_bench-", dir=output.parent) as scratch:
            staged = Path(scratch) / "input"
            staged.mkdir()
            for path in inputs:
                (staged / path.name).symlink_to(path.resolve())
            dirname = "predictions"
            command = atc.ais_bench_command(self.ais_bench, self.model, staged, Path(scratch), dirname, self.device)
            atc.require_tool(command)
            LOG.info("running: %s", shlex.join(command))
            start = time.perf_counter()
            completed = subprocess.run(command, check=False)
            if completed.returncode != 0:
                raise UserError(f"ais_bench failed (exit {completed.returncode}); see its output above")
            ais_summary = atc.collect_ais_bench_output(Path(scratch), dirname, output)
            wall = time.perf_counter() - start
        return file_run(ais_summary, wall)


def file_run(ais_summary: dict, wall_seconds: float) -> FileRun:
    """ais_bench's summary as a :class:`FileRun`: aggregate compute statistics (ais_bench reports no
    per-image times), its H2D/D2H latencies, and its own throughput kept as it reported it."""
    outputs = ais_summary.get("_outputs", [])
    files = {name.removesuffix("_0.bin") + ".bin": name for name in outputs}
    extra = {key: ais_summary.get(key) for key in ("H2D_latency", "D2H_latency", "throughput")}
    return FileRun({}, files, wall_seconds, compute_stats=ais_summary.get("NPU_compute_time", {}), extra=extra)
