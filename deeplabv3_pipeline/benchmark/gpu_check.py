"""The prepared GPU check (scripts/gpu_check.py; README "NVIDIA GPUs"): the PyTorch cells of the matrix on
CUDA, measured on a machine that has a GPU, its own torch and no network, in one command.

Two halves.

- Here, where PyPI is reachable: :func:`wheel_requirements` and :func:`download_commands` bring what such
  a machine lacks of this project's dependencies (:data:`WHEELS`): the pure-Python wheels (mmsegmentation,
  mmengine, mmcv-lite, ...) at the versions this project runs, regex once per CPython
  (:data:`PER_PYTHON`) and OpenCV's one headless wheel for every CPython 3 (abi3), checked against the
  budget of what a device call carries (:func:`budget_problem`).
- There: :func:`missing_modules` and :func:`wheel_for` say what to install from those wheels,
  :func:`write_stand_ins` stands in for the modules mmseg imports only for code the check never runs
  (:data:`IMPORT_ONLY`: scipy; any use of a stand-in raises), and whatever else is missing is named. Then
  :func:`plan` gives the stage CLIs the check runs, in order, as the workflow runs them: the demo frames,
  their labels and ``.bin`` files, the demo checkpoint, the CPU reference (``pytorch-fp32`` on the CPU),
  and per GPU run ``infer.py`` and ``evaluate.py``; :func:`cell_figures` reads what they wrote into a row
  of the table (compute and end-to-end images/s, latency, compile time, GPU memory, mIoU and the pixel
  agreement with the CPU reference).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.metrics import pixel_agreement
from deeplabv3_pipeline.model.train_flags import training_flags
from deeplabv3_pipeline.report.tables import markdown_table

MIB = 1 << 20
CARRY_LIMIT_MIB = 64  # what one device call takes along: the working tree and the wheels
# Top-level module -> the wheel that brings it, for everything the check's stage CLIs import that a
# GPU machine's PyTorch image may lack (what torch itself needs, it has).
WHEELS = {
    "mmseg": "mmsegmentation",
    "mmengine": "mmengine",
    "mmcv": "mmcv-lite",
    "addict": "addict",
    "yapf": "yapf",
    "termcolor": "termcolor",
    "rich": "rich",
    "markdown_it": "markdown-it-py",
    "mdurl": "mdurl",
    "pygments": "pygments",
    "platformdirs": "platformdirs",
    "prettytable": "prettytable",
    "wcwidth": "wcwidth",
    "ftfy": "ftfy",
    "cityscapesscripts": "cityscapesscripts",
    "pyquaternion": "pyquaternion",
    "tqdm": "tqdm",
    "threadpoolctl": "threadpoolctl",
    "packaging": "packaging",
    "cv2": "opencv-python-headless",
    "regex": "regex",
}
# OpenCV: the project's image I/O (PNG frames and labels). Its last abi3 wheel under 50 MB (5.0's is 61 MB,
# too much beside the rest); the check reads and writes PNGs only, the same in either version.
OPENCV_WHEEL = "opencv-python-headless==4.11.0.86"
# Compiled for one CPython each: downloaded for every CPython a GPU image may have. (mmseg compiles a
# tokenizer's pattern with regex's \p{L} classes when it is imported: the standard re cannot stand in.)
PER_PYTHON = ("regex",)
PYTHONS = ("3.11", "3.12", "3.13")
# Imported by mmseg at import time, used only by code the check never runs: stood in for where missing
# (its augmentations and other models' losses and assigners; tested: the check's steps run with it).
IMPORT_ONLY = {"scipy": ("scipy", "scipy.ndimage", "scipy.optimize", "scipy.interpolate")}
# What must be on the machine already (compiled, version-bound to its Python; torch brings its own needs).
REQUIRED = ("torch", "numpy", "yaml")


@dataclass(frozen=True)
class GpuRun:
    """One cell on the GPU: ``pytorch-<precision>``, eager or compiled by torch.compile."""

    precision: str
    compile: bool = False

    @property
    def name(self) -> str:
        return f"pytorch-{self.precision}" + ("-compiled" if self.compile else "")


RUNS = {run.name: run for run in (GpuRun("fp32"), GpuRun("fp16"), GpuRun("bf16"), GpuRun("fp16", compile=True))}


def get_runs(names: Sequence[str]) -> list[GpuRun]:
    unknown = [name for name in names if name not in RUNS]
    if unknown:
        raise UserError(f"--runs: unknown run {unknown[0]!r}: choose from {', '.join(RUNS)}")
    return [RUNS[name] for name in names]


# ---------------------------------------------------------------- here: the wheels


def pinned_requirements(requirements: Path) -> dict[str, str]:
    """name -> ``name==version`` of the pins of a requirements file (lower-case names)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if "==" in spec:
            name = spec.split("==", 1)[0].strip().lower()
            pins[name] = spec
    return pins


def wheel_requirements(requirements: Path) -> list[str]:
    """The requirement of each wheel in :data:`WHEELS`: the project's pin, else the version installed here
    (what the project runs), else the name alone; OpenCV as :data:`OPENCV_WHEEL`."""
    pins = pinned_requirements(requirements)
    specs = []
    for project in WHEELS.values():
        if project == "opencv-python-headless":
            specs.append(OPENCV_WHEEL)
            continue
        try:
            installed = f"{project}=={importlib.metadata.version(project)}"
        except importlib.metadata.PackageNotFoundError:
            installed = project
        specs.append(pins.get(project.lower(), installed))
    return specs


def download_commands(specs: Sequence[str], folder: Path) -> list[list[str]]:
    """pip's downloads of ``specs`` as wheels, without their dependencies (each is listed): pure Python or abi3
    ones that install on any x86-64 CPython >= 3.11, and those of :data:`PER_PYTHON` once per :data:`PYTHONS`."""
    per_python = [spec for spec in specs if spec.split("==")[0].lower() in PER_PYTHON]
    anywhere = [spec for spec in specs if spec not in per_python]

    def download(python: str, abis: Sequence[str], chosen: Sequence[str]) -> list[str]:
        return [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", str(folder), "--python-version", python, "--implementation", "cp",
            *(arg for abi in abis for arg in ("--abi", abi)),
            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform", "any",
            *chosen,
        ]  # fmt: skip

    # (3.11: some of the versions this project runs require it; pip names the Python a wheel needs)
    commands = [download("3.11", ("abi3", "none"), anywhere)] if anywhere else []
    if per_python:
        commands += [download(python, (f"cp{python.replace('.', '')}",), per_python) for python in PYTHONS]
    return commands


def carried_bytes(paths: Sequence[Path]) -> int:
    return sum(path.stat().st_size for path in paths if path.is_file())


def budget_problem(wheels: Sequence[Path], tree_bytes: int, limit_mib: int = CARRY_LIMIT_MIB) -> str | None:
    """Why the wheels and the working tree would not fit one device call, or None."""
    total = carried_bytes(wheels) + tree_bytes
    if total <= limit_mib * MIB:
        return None
    return (
        f"the wheels ({carried_bytes(wheels) / MIB:.1f} MiB) and the working tree ({tree_bytes / MIB:.1f} MiB) "
        f"come to {total / MIB:.1f} MiB, over the {limit_mib} MiB a device call carries: leave out what the "
        "machine has (--skip NAME)"
    )


# ---------------------------------------------------------------- there: what is missing


@dataclass
class Preflight:
    """What the machine lacked: installed from the wheels, and stood in for (anything else is an error)."""

    installed: list[str]
    stand_ins: list[str]

    def describe(self) -> str:
        parts = [f"installed from the wheels: {', '.join(self.installed) or 'nothing'}"]
        parts.append(f"stood in for (never called): {', '.join(self.stand_ins) or 'nothing'}")
        return "; ".join(parts)


def is_importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def runs_here(wheel: Path, version: tuple[int, int] = sys.version_info[:2]) -> bool:
    """Whether a wheel installs on this CPython by its file name's tags (``name-ver-py3-none-any.whl``,
    ``...-cp37-abi3-manylinux...``, ``...-cp311-cp311-manylinux...``; x86-64 Linux, as the GPU machines)."""
    python, abi = wheel.name.split("-")[-3:-1]
    here = f"cp{version[0]}{version[1]}"
    if abi == "none":
        return any(tag in ("py3", "py2.py3", here) or tag.startswith("py3") for tag in python.split("."))
    if abi == "abi3":
        return any(tag.startswith("cp3") and int(tag[3:] or 0) <= version[1] for tag in python.split("."))
    return python == here and abi == here


def wheel_for(project: str, wheels: Sequence[Path]) -> Path | None:
    """The wheel of ``project`` among ``wheels`` that installs on this Python (names normalise ``-`` to ``_``)."""
    prefix = project.replace("-", "_").lower() + "-"
    return next((path for path in wheels if path.name.lower().startswith(prefix) and runs_here(path)), None)


def missing_modules(importable=is_importable) -> tuple[list[str], list[str], list[str]]:
    """(modules with a wheel, import-only modules, required modules) that are not importable here."""
    with_wheel = [module for module in WHEELS if not importable(module)]
    import_only = [module for module in IMPORT_ONLY if not importable(module)]
    required = [module for module in REQUIRED if not importable(module)]
    return with_wheel, import_only, required


STAND_IN = '''"""A stand-in written by scripts/gpu_check.py: this machine lacks {module}, which mmseg imports at import
time for code the GPU check never runs. Using anything of it raises."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def missing(*args, **kwargs):
        raise RuntimeError(f"{{__name__}}.{{name}} is a stand-in (scripts/gpu_check.py): install {module}")

    return missing
'''


def write_stand_ins(modules: Sequence[str], folder: Path) -> None:
    """A package per module of :data:`IMPORT_ONLY` (and its submodules) under ``folder``, whose every
    attribute is a function that raises; ``folder`` goes first on the stage CLIs' PYTHONPATH."""
    for module in modules:
        for name in IMPORT_ONLY[module]:
            init = folder.joinpath(*name.split(".")) / "__init__.py"
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(STAND_IN.format(module=module))


# ---------------------------------------------------------------- there: the steps


@dataclass(frozen=True)
class Layout:
    """Where the check's files go: ``work`` (frames, bins, models, predictions, the cells' summaries and
    results, the logs) and ``out``: what comes back, three files (``benchmark.md``, ``gpu_check.json`` and
    :data:`BUNDLE`, the cells' files and the logs), as a device call returns a few files only."""

    work: Path
    out: Path

    @property
    def root(self) -> Path:
        return self.work / "cityscapes"

    @property
    def prep(self) -> Path:
        return self.work / "prep"

    @property
    def labels(self) -> Path:
        return self.work / "labels"

    @property
    def made_checkpoint(self) -> Path:
        return self.work / "deeplabv3.pth"

    def predictions(self, name: str) -> Path:
        return self.work / "infer" / name

    @property
    def cells(self) -> Path:
        return self.work / "cells"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def summary(self, name: str) -> Path:
        return self.cells / name / "summary.json"

    def result(self, name: str) -> Path:
        return self.cells / name / "result"


REFERENCE = "pytorch-fp32-cpu"
BUNDLE = "cells_and_logs.tar.gz"


def bundle(layout: Layout) -> Path:
    """``out``/:data:`BUNDLE`: the cells' summary.json and result.json/.txt and every step's log."""
    import tarfile

    path = layout.out / BUNDLE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for folder in (layout.cells, layout.logs):
            if folder.is_dir():
                archive.add(folder, arcname=folder.name)
    return path


@dataclass(frozen=True)
class StageRun:
    """One stage CLI run: ``scripts/<script>`` with ``args``, for ``cell`` (None: the data, the checkpoint)."""

    name: str
    script: str
    args: tuple[str, ...]
    cell: str | None = None

    def command(self) -> list[str]:
        return [sys.executable, f"scripts/{self.script}", *self.args]


MADE_CHECKPOINTS = ("trained", "random")  # the demo's (demo.checkpoint); else a checkpoint file


def checkpoint_step(kind: str, weights: Path, model_config: str, config: Mapping[str, Any]) -> StageRun:
    """The step that makes the demo's ``trained`` or ``random`` checkpoint of ``model_config`` at ``weights``."""
    seed = str(config["demo"]["seed"])
    made = ("--model-config", model_config, "--output", str(weights), "--seed", seed)
    if kind == "trained":
        return StageRun("checkpoint", "train_demo_checkpoint.py", (*made, *training_flags(config["demo"]["training"])))
    return StageRun("checkpoint", "make_demo_data.py", ("checkpoint", *made))


def checkpoint_file(layout: Layout, checkpoint: str) -> Path:
    return layout.made_checkpoint if checkpoint in MADE_CHECKPOINTS else Path(checkpoint)


def plan(
    layout: Layout,
    runs: Sequence[GpuRun],
    *,
    config: Mapping[str, Any],
    images: int,
    shape: tuple[int, int],
    device: str,
    checkpoint: str,
    warmup: int,
    model_config: str | None = None,
) -> list[StageRun]:
    """The check's stage CLIs in order (the workflow's own, with the flags its rules give them).
    ``checkpoint``: the demo's trained or random one, made by the check, or a checkpoint file of
    ``model_config`` (default: config.yaml's model.config)."""
    size = tuple(str(side) for side in shape)
    model_config = model_config or config["model"]["config"]
    weights = checkpoint_file(layout, checkpoint)
    frames = ("dataset", "--root", str(layout.root), "--split", "val", "--count", str(images), "--seed",
              str(config["demo"]["seed"]), "--shape", *size)  # fmt: skip
    labels = ("--gt_path", str(layout.root / "gtFine" / "val"), "--output", str(layout.labels), "--shape", *size)
    prep = (str(layout.root / "leftImg8bit" / "val"), str(layout.prep), "--input-shape", *size)
    steps = [
        StageRun("frames", "make_demo_data.py", frames),
        StageRun("labels", "make_labels.py", labels),
        StageRun("preprocess", "preprocess.py", prep),
    ]
    if checkpoint in MADE_CHECKPOINTS:
        steps.append(checkpoint_step(checkpoint, weights, model_config, config))
    # the reference's warm-up: one image (on the CPU, nothing to search; it takes seconds an image)
    cells = [(REFERENCE, "fp32", "cpu", False, 1)]
    cells += [(run.name, run.precision, device, run.compile, warmup) for run in runs]
    for name, precision, on, compiled, warm in cells:
        infer = ("--backend", "pytorch", "--model", str(weights), "--input", str(layout.prep), "--output",
                 str(layout.predictions(name)), "--summary", str(layout.summary(name)), "--precision", precision,
                 "--warmup", str(warm), "--torch-device", on, "--compile" if compiled else "--no-compile",
                 "--model-config", model_config, "--input-shape", *size)  # fmt: skip
        evaluate = ("--output_path", str(layout.predictions(name)), "--gt_path", str(layout.labels),
                    "--result_path", str(layout.result(name)), "--shape", *size, "--summary",
                    str(layout.summary(name)), "--backend", "pytorch", "--variant", f"pytorch-{precision}",
                    "--model-name", "deeplabv3", "--model-file", str(weights), "--checkpoint", str(weights),
                    "--synthetic", "SYNTHETIC: demo frames and a demo checkpoint (scripts/gpu_check.py)")  # fmt: skip
        steps += [
            StageRun(f"infer {name}", "infer.py", infer, name),
            StageRun(f"evaluate {name}", "evaluate.py", evaluate, name),
        ]
    return steps


# ---------------------------------------------------------------- there: the figures


def agreement_with(reference: Path, predictions: Path) -> float:
    """The share of pixels of the same class as the reference's, over every frame of both folders."""
    names = sorted(path.name for path in reference.glob("*_0.bin"))
    if not names or sorted(path.name for path in predictions.glob("*_0.bin")) != names:
        raise UserError(f"{predictions} does not hold the predictions of {reference}'s frames")
    ours = np.concatenate([np.fromfile(predictions / name, np.int64) for name in names])
    theirs = np.concatenate([np.fromfile(reference / name, np.int64) for name in names])
    return pixel_agreement(ours, theirs)


def failed_row(name: str, error: str) -> dict[str, Any]:
    """The row of a run whose step failed: its error, no figures (the other runs' rows stand)."""
    return {**dict.fromkeys(key for key, _ in COLUMNS), "run": name, "error": error, "precision_evidence": "-"}


def cell_figures(name: str, layout: Layout) -> dict[str, Any]:
    """One row of the table from the cell's summary and result and its predictions."""
    summary = json.loads(layout.summary(name).read_text())
    result = json.loads(layout.result(name).with_suffix(".json").read_text())
    compute = summary["compute_time"]
    gpu = summary.get("gpu") or {}
    return {
        "run": name,
        "inference_precision": summary["inference_precision"],
        "images": summary["num_images"],
        "compute_images_per_s": summary["throughput"],
        "compute_ms_median": compute["median"],
        "compute_ms_p99": compute["percentile(99%)"],
        "end_to_end_images_per_s": summary["end_to_end"]["images_per_s"],
        "end_to_end_share": summary["end_to_end"]["images_per_s"] / summary["throughput"]
        if summary["throughput"]
        else None,
        "compile_s": summary.get("compile_s"),
        "h2d_ms_median": (summary.get("h2d_ms") or {}).get("median"),
        "d2h_ms_median": (summary.get("d2h_ms") or {}).get("median"),
        "gpu": gpu.get("name"),
        "gpu_memory_mb": gpu.get("memory_used_mb"),
        "miou": result["mIoU"],
        "agreement_with_cpu_fp32": agreement_with(layout.predictions(REFERENCE), layout.predictions(name)),
        "versions": summary.get("versions"),
        "precision_evidence": summary["precision_evidence"],
    }


COLUMNS = (
    ("run", "run"),
    ("inference_precision", "computes"),
    ("compute_images_per_s", "compute images/s"),
    ("compute_ms_median", "median ms"),
    ("compute_ms_p99", "p99 ms"),
    ("end_to_end_images_per_s", "end-to-end images/s"),
    ("end_to_end_share", "end to end / compute"),
    ("compile_s", "compile s"),
    ("gpu_memory_mb", "peak MiB"),
    ("miou", "mIoU"),
    ("agreement_with_cpu_fp32", "agreement with CPU fp32"),
)


def cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}" if value <= 1 else f"{value:.2f}"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return markdown_table(
        [title for _, title in COLUMNS], [[cell_text(row[key]) for key, _ in COLUMNS] for row in rows]
    )


def markdown(rows: Sequence[Mapping[str, Any]], facts: Mapping[str, Any]) -> str:
    """The check's page: the machine and versions, the table, each run's precision evidence."""
    lines = [
        f"# GPU check: DeepLabV3 at {facts['shape'][0]}x{facts['shape'][1]}, {facts['images']} images",
        "",
        f"{facts['gpu']}; {facts['versions']}; {facts['checkpoint']} checkpoint on the demo frames "
        "(SYNTHETIC: the mIoU says nothing about Cityscapes); agreement: the share of pixels of the CPU "
        "fp32 reference's class.",
        f"Machine: {facts['preflight']}.",
        "",
        *table(rows),
        "",
        *(f"- {row['run']}: {row.get('error') or row['precision_evidence']}" for row in rows),
        "",
    ]
    return "\n".join(lines)
