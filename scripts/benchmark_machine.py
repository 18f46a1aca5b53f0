#!/usr/bin/env python3
"""This machine's facts for the benchmark: CPU, speed-relevant flags, cores, clock, peaks, versions.

    python scripts/benchmark_machine.py --threads 8 --output results/benchmark/machine.json

Two peaks, both in billions of operations per second: ``theoretical_peak_gops`` per precision from
the instruction set, the cores the variants may use (``peak_cores``) and the listed clock (see
``deeplabv3_pipeline.cpu.theoretical_peaks`` for why it is only a bound), and ``gemm_gflops``, the best
fp32 matmul rate of numpy and torch at ``--threads``: what the runtimes' own kernels reach here.
The gathering step shows no variant above the larger of the two.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from deeplabv3_pipeline.cpu import (
    clock_mhz,
    cpu_flags,
    cpu_model_name,
    gemm_rate,
    peak_notes,
    speed_flags,
    theoretical_peaks,
    usable_cores,
)
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json

LOG = logging.getLogger("benchmark_machine")
LIBRARIES = ("numpy", "torch", "onnxruntime", "openvino")


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions (package metadata: nothing is imported); None for one that is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def peak_cores(threads: int, cores: int) -> int:
    """The cores a variant at ``threads`` can keep busy: all usable ones for 0 (the runtime's default)."""
    return min(threads, cores) if threads else cores


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="threads the variants run with (0: every usable core)")
    parser.add_argument("--gemm-size", type=int, default=2048, help="matrix size of the measured matmul")
    parser.add_argument("--gemm-repeats", type=int, default=3, help="timed matmuls per library (best counts)")
    parser.add_argument("--output", type=Path, required=True, help="machine.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads < 0 or args.gemm_size < 1 or args.gemm_repeats < 1:
        raise UserError("--threads cannot be negative, --gemm-size and --gemm-repeats must be at least 1")
    flags = cpu_flags()
    cores = usable_cores()
    mhz = clock_mhz()
    used_cores = peak_cores(args.threads, cores)
    gemm = gemm_rate(args.threads, args.gemm_size, args.gemm_repeats)
    machine = {
        "cpu": cpu_model_name(),
        "flags": speed_flags(flags),
        "usable_cores": cores,
        "threads": gemm["threads"],
        "clock_mhz": mhz,
        "peak_cores": used_cores,
        "theoretical_peak_gops": theoretical_peaks(flags, used_cores, mhz),
        "theoretical_peak_notes": peak_notes(flags),
        "gemm_gflops": gemm,
        "versions": library_versions(),
    }
    write_json(args.output, machine)
    LOG.info(
        "%s, %d usable cores, %s MHz: theoretical fp32 peak %s GFLOP/s, measured fp32 GEMM %.1f GFLOP/s",
        machine["cpu"],
        cores,
        f"{mhz:.0f}" if mhz else "?",
        f"{machine['theoretical_peak_gops']['fp32']:.1f}" if mhz else "?",
        gemm["best"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
