"""What the tests share (the one helper module; fixtures are in conftest.py, the tiny run among them, one for
the whole session): the tiny config, running Snakemake as a user would, configs, copies of a run, reading
results, reading figures and HTML tables, and the test-only backend."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import yaml

from deeplabv3_pipeline.backends import PATH_VARIABLE

from .conftest import REPO, run_script

SHAPE = [64, 128]
# The workflow tests run DeepLabV3 with the R18-D8 backbone: the guide's model family (the same head,
# export and rules) at a quarter of R50-D8's compute and a fifth of its 270 MB of weights. The guide's
# R50-D8 itself is exported and checked by the unit tests (conftest's onnx_models) and run by the
# README tests of the default config.
SCENARIOS = REPO / ".test"  # the test scenarios, one config.yaml each (.test/README.md)


def scenario(name: str) -> dict:
    """A test scenario's config (``.test/<name>/config.yaml``), as a test writes it into its workdir."""
    return yaml.safe_load((SCENARIOS / name / "config.yaml").read_text())


TINY = scenario("tiny")
TINY_MODEL = TINY["model"]["config"]  # DeepLabV3 R18-D8, published mIoU 76.70 (mmseg's metafile)
# A size other than Cityscapes' keys the per-frame folders and the models (plan.data_tag, plan.model_tag).
TAG = "@64x128"


def key(model: str) -> str:
    """A model's key at the tests' size: its folder, file and cell name (``deeplabv3@64x128``)."""
    return model + TAG


DEMO_DATA = Path("demo") / f"val{TAG}"  # results/prep_dataset/<dataset>/<split>@<size>, results/infer/...
TINY_KEY = key("deeplabv3")
SIM_MODEL_PATH = f"results/models/{TINY_KEY}/{TINY_KEY}_sim_bs1.onnx"
EXPORT_PATH = f"results/models/{TINY_KEY}/{TINY_KEY}.onnx"
DEMO_CHECKPOINT_PATH = "results/demo/checkpoints/deeplabv3.pth"  # by the given name: every size shares it
# the 2-model x 3-variant matrix of the tests (.test/matrix): PSPNet's pooling bins do not divide its
# 8x16 feature map, so its export is checked where the naive one would differ
MATRIX = scenario("matrix")["matrix"]  # pytorch-fp32 (the reference), onnxruntime-fp32, openvino-fp32
(PSPNET,) = MATRIX["models"]  # published mIoU 74.87
# per-cell rules are named <stage>_<model>_<variant>[_shard<i>]
CELL_STAGES = ("infer", "gather_summaries", "evaluate")


def infer_dir(variant: str = "onnxruntime-fp32", model: str = TINY_KEY, data: Path = DEMO_DATA) -> Path:
    """A cell's prediction folder, relative to the workdir."""
    return Path("results") / "infer" / data / model / variant


def cell_result(variant: str = "onnxruntime-fp32", model: str = TINY_KEY, data: Path = DEMO_DATA) -> Path:
    """A cell's result.json, relative to the workdir."""
    return Path("results") / "cells" / data / model / variant / "result.json"


def report_dir(variant: str = "onnxruntime-fp32", model: str = TINY_KEY, data: Path = DEMO_DATA) -> Path:
    """A cell's report figures and tables (rule report_figures), relative to the workdir."""
    return Path("results") / "report" / data / model / variant


def stage_of(rule: str) -> str:
    """``infer_deeplabv3_onnxruntime_fp32_shard1`` -> ``infer``; other rule names as they are."""
    for stage in CELL_STAGES:
        if rule.startswith(f"{stage}_"):
            return stage
    return rule


def rules_in(output: str) -> set[str]:
    """The rules a Snakemake run or dry run lists (per-cell rules by their stage)."""
    # (a grouped job's rules are indented: each cell's metrics are one group)
    return {stage_of(rule) for rule in re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.MULTILINE)}


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


def planned_rules(workdir: Path, target: str = "results/result.json") -> set[str]:
    """The rules a dry run of ``target`` would run (per-cell rules by their stage)."""
    return rules_in(snakemake(workdir, "-n", target).stdout)


# A tiny run holds ~800 MB of models and checkpoint (DeepLabV3's real R50 layers); twenty tests copy it.
# Copying them would write ~16 GB per suite (a CI machine with less free disk failed on it), so copies
# share the large files as hard links. Snakemake deletes a job's outputs before running it and the
# workflow writes through rename, so a run never writes into a shared file; a test that damages one
# must replace it (``replace_file``), never write into it.
LINKED_FROM_BYTES = 1 << 20


def _link_large_files(source: str, destination: str) -> None:
    if Path(source).stat().st_size >= LINKED_FROM_BYTES:
        os.link(source, destination)
    else:
        shutil.copy2(source, destination)


def copy_run(run: Path, workdir: Path) -> Path:
    """A run's folder copied to ``workdir`` (its large files hard-linked: see LINKED_FROM_BYTES)."""
    shutil.copytree(run, workdir, symlinks=True, copy_function=_link_large_files)
    return workdir


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file at ``path``: a hard-linked file of another run stays as it was."""
    path.unlink()
    path.write_bytes(data)


# ------------------------------------------------------- reading figures and HTML tables (the report)


FIGURE_FILES = (  # what report_figures writes
    "per_class_iou.png",
    "confusion_matrix.png",
    "examples.png",
    "runtimes.png",
)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable PNG"
    return image


def assert_readable_figure(path: Path, min_width: int = 800, min_height: int = 200) -> np.ndarray:
    """A PNG of a useful size that is not blank (several colours, some variance)."""
    image = read_png(path)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height, (path.name, image.shape)
    assert image.std() > 10, f"{path.name} looks blank"
    colours = image.reshape(-1, 3).astype(np.int32) @ np.array([1 << 16, 1 << 8, 1])
    assert len(np.unique(colours)) > 20, f"{path.name} has almost no colours"
    return image


TAB_RED = (40, 39, 214)  # matplotlib's tab:red as cv2 reads it (BGR): what the figures mark a failure with


def pixels_of(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 2) -> int:
    """How many pixels of ``image`` have the colour ``bgr`` (each channel within ``tolerance``)."""
    return int(np.all(np.abs(image.astype(int) - bgr) <= tolerance, axis=-1).sum())


class Tables(HTMLParser):
    """The cell texts of every <table> of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def html_tables(text: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(text)
    return parser.tables


# --------------------------------------------- the test-only backend (tests/backends/constant)

# the repository's config.yaml with the tiny settings: what the registry tests plan against
CONFIG = merged(yaml.safe_load((REPO / "config.yaml").read_text()), TINY)


PLUGINS = REPO / "tests" / "backends"  # holds constant/, a backend subpackage of its own


def with_plugins() -> dict[str, str]:
    return dict(os.environ, **{PATH_VARIABLE: str(PLUGINS)})
