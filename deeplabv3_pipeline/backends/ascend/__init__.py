"""Ascend NPUs: the guide's procedure. ATC compiles the simplified ONNX into one ``.om`` per
``ascend.soc_versions`` (rule atc; the commands in :mod:`.atc`, no CANN needed to build or show them),
and ais_bench runs the first one (:mod:`.runner`).

An out-of-process backend: ais_bench runs whole folders, so ``in_process`` is False and the wrapper
has ``infer_files`` only (no ``run(image)``); the benchmark times in-process backends only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.options import from_config, option
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step

from ..base import Config, LayerCompare
from . import atc, layers
from .runner import PRECISIONS as PRECISIONS  # the registry reads it here
from .runner import AscendBackend

SUMMARY = "Ascend NPU: ATC .om per soc_version, run by ais_bench (CANN)"
IN_PROCESS = False
RUNS_ON_CPU = False


def model_steps(precision: str, config: Config) -> list[Step]:
    """The .om of the first soc_version, at the precision (its folder: ATC's fp16 and fp32 differ)."""
    first_soc = config["ascend"]["soc_versions"][0]
    return [*artifacts.ONNX_STEPS, artifacts.ATC.format(soc=first_soc, precision=precision)]


# ascend-fp16-mixed: ATC's fp16 with the fewest nodes kept fp32 for fp16.target (--keep_dtype), the nodes
# searched here on the fp16 ONNX model in ONNX Runtime (rule convert_fp16_mixed)
MIXED_PRECISIONS = ("fp16",)


def mixed_model_steps(precision: str, config: Config) -> list[Step]:
    first_soc = config["ascend"]["soc_versions"][0]
    folder = artifacts.MIXED_PRECISION_FOLDER.format(precision=precision)
    return [*artifacts.ONNX_STEPS, artifacts.CONVERT_FP16_MIXED, artifacts.ATC.format(soc=first_soc, precision=folder)]


def extra_targets(precision: str, config: Config) -> list[Step]:
    """An .om for every soc_version, also those not run here."""
    return [artifacts.ATC.format(soc=soc, precision=precision) for soc in config["ascend"]["soc_versions"]]


@dataclass(frozen=True)
class Options:
    device: int = option(0, "accelerator id: the NPU", config="ascend.device")
    ais_bench: str = option("python3 -m ais_bench", "how to start ais_bench", config="ascend.ais_bench")


def environment_problems(config: Config) -> list[str]:
    """atc and ais_bench must start here (CANN's tools)."""
    commands = (["atc"], shlex.split(from_config(Options, config).ais_bench))
    return [problem for problem in map(atc.missing_tool, commands) if problem]


def open_model(model: Path, precision: str, threads: int, options: Options) -> AscendBackend:
    return AscendBackend(model, precision, options.device, options.ais_bench)


# the per-layer comparison: this backend's own tool, planned (its runtime is not here)
LAYER_COMPARE = LayerCompare(tools=("msit",), commands=layers.msit_commands)
