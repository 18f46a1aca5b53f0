"""What the workflow tests share: the tiny config, running Snakemake as a user would, configs, and
reading results. The tiny run itself is a fixture in conftest.py (one for the whole session)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO, run_script

SHAPE = [64, 128]
TINY = {"model": {"input_shape": SHAPE}, "demo": {"images": 3}, "threads": 2}
DEMO_DATA = Path("demo") / "val"  # results/prep_dataset/<dataset>/<split>, results/infer/<dataset>/<split>/...
SIM_MODEL_PATH = "results/models/deeplabv3_sim_bs1.onnx"


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", *args]
    # Snakemake prints some errors on stdout, some on stderr: read them as one stream.
    completed = subprocess.run(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, env=env
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{completed.stdout[-6000:]}")
    return completed


def write_config(workdir: Path, config: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def merged(*dicts: dict) -> dict:
    result: dict = {}
    for update in dicts:
        for key, value in update.items():
            result[key] = merged(result.get(key, {}), value) if isinstance(value, dict) else value
    return result


FIGURES = ("aAcc", "mIoU", "mAcc", "per_class", "confusion_matrix", "per_image", "num_images")


def figures(result: dict) -> dict:
    return {key: result[key] for key in FIGURES}


def read_result(workdir: Path) -> dict:
    return json.loads((workdir / "results" / "result.json").read_text())


def clean_figures(run: Path, frames: list[str], scratch: Path) -> dict:
    """What a clean run on exactly ``frames`` reports: evaluate.py on that run's own files of those frames."""
    recorded = read_result(run)
    predictions = [recorded["predictions"][frame] for frame in frames]
    labels = [recorded["labels"][frame] for frame in frames]
    result_path = scratch / "clean_result"
    run_script(
        "evaluate.py",
        "--predictions",
        *(run / p for p in predictions),
        "--labels",
        *(run / p for p in labels),
        "--result_path",
        result_path,
    )
    return figures(json.loads(result_path.with_suffix(".json").read_text()))


def planned_rules(workdir: Path) -> set[str]:
    """The rules a dry run of results/result.json would run."""
    planned = snakemake(workdir, "-n", "results/result.json").stdout
    return set(re.findall(r"^(?:local)?rule (\w+):", planned, flags=re.MULTILINE))


def copy_run(run: Path, workdir: Path) -> Path:
    shutil.copytree(run, workdir, symlinks=True)
    return workdir
