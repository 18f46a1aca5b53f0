"""Ascend's tools: the ATC and ais_bench command lines, their checks, and reading ais_bench's output
(the wrapper behind the common interface is :mod:`.runner`, the registration the package's ``__init__``).

Nothing here needs CANN to be importable: commands are built as lists (unit-tested, and shown
by ``snakemake -n -p``), and run only where the tools exist.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ...errors import UserError

CANN_HINT = (
    "install the CANN toolkit and run `source /usr/local/Ascend/ascend-toolkit/set_env.sh` (it puts atc on PATH)"
)
AIS_BENCH_HINT = (
    "install the ais_bench wheels (aclruntime and ais_bench, from the Ascend tools repository's "
    "ais-bench_workload/tool/ais_bench) and source CANN's set_env.sh"
)


# precision -> ATC's --precision_mode. fp16 adds no flag: force_fp16 is ATC's default (CANN's
# ATC parameter reference), so the guide's command, and its 79.06 / 79.12, are fp16.
ATC_PRECISION_MODES = {"fp16": None, "fp32": "force_fp32"}


def atc_precision_args(precision: str, extra_args: str) -> list[str]:
    """``--precision_mode`` for ``precision``; one set by hand in ``extra_args`` would contradict it."""
    if "--precision_mode" in extra_args:
        raise UserError(
            "ascend.atc_args sets --precision_mode: set config `precision` (fp16 or fp32) instead, so that "
            "result.json records what ran"
        )
    mode = ATC_PRECISION_MODES[precision]
    return [f"--precision_mode={mode}"] if mode else []


def precision_record(precision: str) -> dict[str, str]:
    """summary.json's precision fields for an .om: what ATC was asked for (an .om cannot be read back here)."""
    mode = ATC_PRECISION_MODES[precision] or "force_fp16 (ATC's default)"
    return {"inference_precision": precision, "precision_evidence": f"ATC --precision_mode {mode}"}


def keep_dtype_text(nodes: Sequence[str]) -> str:
    """ATC's ``--keep_dtype`` file: one operator name a line, each computed in the original model's type
    (fp32) while ``--precision_mode`` lowers the rest (``force_fp16``, ATC's default). Node names, where
    ``--modify_mixlist`` takes operator types only (every Conv2D or none)."""
    return "".join(f"{name}\n" for name in nodes)


def atc_command(
    onnx_model: Path,
    om_model: Path,
    soc_version: str,
    input_shape: tuple[int, int],
    precision: str = "fp16",
    extra_args: str = "",
    keep_dtype: Path | None = None,
) -> list[str]:
    """The guide's ATC call (with ``keep_dtype``: the nodes of that file kept fp32). ATC appends ``.om`` to
    ``--output``, so the suffix is stripped here."""
    output = str(om_model)
    return [
        "atc",
        "--framework=5",
        f"--model={onnx_model}",
        f"--output={output.removesuffix('.om')}",
        "--input_format=NCHW",
        f"--input_shape=input:1,3,{input_shape[0]},{input_shape[1]}",
        "--log=error",
        f"--soc_version={soc_version}",
        *atc_precision_args(precision, extra_args),
        *([f"--keep_dtype={keep_dtype}"] if keep_dtype is not None else []),
        *shlex.split(extra_args),
    ]


def ais_bench_command(
    ais_bench: str, om_model: Path, input_dir: Path, output_dir: Path, dirname: str, device: int
) -> list[str]:
    """ais_bench with a fixed ``--output_dirname`` (never its timestamp folder)."""
    return [
        *shlex.split(ais_bench),
        "--model",
        str(om_model),
        "--input",
        str(input_dir),
        "--output",
        str(output_dir),
        "--output_dirname",
        dirname,
        "--outfmt",
        "BIN",
        "--batchsize",
        "1",
        "--device",
        str(device),
    ]


def missing_tool(command: list[str]) -> str | None:
    """Why ``command`` cannot start here (names the tool and how to get it), or None if it can."""
    program = command[0]
    if "-m" in command[:3]:
        module = command[command.index("-m") + 1]
        if shutil.which(program) is None:
            return f"{program} is not on PATH"
        probe = subprocess.run([program, "-c", f"import {module}"], capture_output=True, check=False)
        if probe.returncode != 0:
            return f"{program} cannot import {module}: {AIS_BENCH_HINT}"
        return None
    if shutil.which(program) is None:
        hint = CANN_HINT if program == "atc" else AIS_BENCH_HINT
        return f"`{program}` is not on PATH: {hint}"
    return None


def require_tool(command: list[str]) -> None:
    problem = missing_tool(command)
    if problem:
        raise UserError(f"cannot run Ascend step: {problem}")


def find_ais_bench_summary(output_dir: Path, dirname: str) -> Path:
    """ais_bench writes ``<output>/<dirname>_summary.json``; ais_infer wrote ``<output>/<dirname>/sumary.json``."""
    for candidate in (output_dir / f"{dirname}_summary.json", output_dir / dirname / "sumary.json"):
        if candidate.is_file():
            return candidate
    raise UserError(f"no ais_bench summary in {output_dir}: neither {dirname}_summary.json nor {dirname}/sumary.json")


def collect_ais_bench_output(output_dir: Path, dirname: str, destination: Path) -> dict:
    """Move ais_bench's ``{stem}_0.bin`` files into ``destination``; return its summary as read."""
    produced = output_dir / dirname
    files = sorted(produced.glob("*_0.bin"))
    if not files:
        raise UserError(f"ais_bench wrote no *_0.bin files into {produced}: see its log")
    summary = json.loads(find_ais_bench_summary(output_dir, dirname).read_text())
    destination.mkdir(parents=True, exist_ok=True)
    for path in files:
        path.replace(destination / path.name)
    summary["_outputs"] = [path.name for path in files]
    return summary
