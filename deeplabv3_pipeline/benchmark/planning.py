"""What planning costs (scripts/bench_planning.py prints it): a dry run of results/result.json over N
frames, the input checks in it, Snakemake's own cost of the same per-frame files (FLOOR), and a dry run of
the 4-model x 6-variant matrix. Each figure is the median of ``repeats`` runs; docs/performance.md
"Planning" has the figures and what they mean."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deeplabv3_pipeline.evaluation.provenance import REPO_ROOT as REPO
from deeplabv3_pipeline.evaluation.provenance import file_sizes, fingerprint, kept_result_problem

CITIES = ("frankfurt", "lindau", "munster")


def make_tree(root: Path, count: int) -> tuple[list[Path], list[Path]]:
    """N frames spread over three cities: (images, labelIds), all empty files."""
    images, labels = [], []
    for index in range(count):
        city = CITIES[index % len(CITIES)]
        frame = f"{city}_{index:06d}_000019"
        image = root / "leftImg8bit" / "val" / city / f"{frame}_leftImg8bit.png"
        label = root / "gtFine" / "val" / city / f"{frame}_gtFine_labelIds.png"
        for path in (image, label):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        images.append(image)
        labels.append(label)
    return images, labels


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kept_result(workdir: Path, images: list[Path], labels: list[Path]) -> tuple[str, list[str]]:
    """A result.json under ``workdir`` listing one prediction per frame (made, 8 bytes each)."""
    predictions = [workdir / "results" / "infer" / f"{image.stem}_0.bin" for image in images]
    predictions[0].parent.mkdir(parents=True, exist_ok=True)
    for path in predictions:
        path.write_bytes(b"\0" * 8)
    relative = [str(path.relative_to(workdir)) for path in predictions]
    result = {
        "predictions": {str(index): path for index, path in enumerate(relative)},
        "labels": {str(index): str(label) for index, label in enumerate(labels)},
        "config": {},
    }
    os.chdir(workdir)
    result["files"] = file_sizes([*relative, *map(str, labels)])
    (workdir / "results" / "x").mkdir(parents=True)
    (workdir / "results" / "x" / "result.json").write_text(json.dumps(result))
    return "results/x/result.json", [*relative, *map(str, labels)]


# The per-frame files of one cell's plan, declared as the workflow declares them, and nothing else.
FLOOR = """
import json
frames = json.load(open("frames.json"))
shards = [frames[i : i + 250] for i in range(0, len(frames), 250)]
rule all:
    input: "results/result.json"
for k, shard in enumerate(shards):
    rule:
        name: f"preprocess_{k}"
        input: [image for image, label, stem in shard]
        output: [f"results/prep/{stem}.bin" for image, label, stem in shard]
        shell: "touch {output:q}"
    rule:
        name: f"labels_{k}"
        input: [label for image, label, stem in shard]
        output: [f"results/labels/{stem}.png" for image, label, stem in shard]
        shell: "touch {output:q}"
    rule:
        name: f"infer_{k}"
        input: [f"results/prep/{stem}.bin" for image, label, stem in shard]
        output: [f"results/infer/{stem}_0.bin" for image, label, stem in shard]
        shell: "touch {output:q}"
rule evaluate:
    input:
        predictions=[f"results/infer/{stem}_0.bin" for image, label, stem in frames],
        labels=[f"results/labels/{stem}.png" for image, label, stem in frames],
    output: "results/cell.json"
    shell: "touch {output:q}"
rule report_figures:
    input:
        images=[image for image, label, stem in frames],
        predictions=[f"results/infer/{stem}_0.bin" for image, label, stem in frames],
        labels=[f"results/labels/{stem}.png" for image, label, stem in frames],
        result="results/cell.json",
    output: "results/figures.png"
    shell: "touch {output:q}"
rule result:
    input: "results/cell.json", "results/figures.png"
    output: "results/result.json"
    shell: "touch {output:q}"
for each in workflow.rules:  # as rules/planning.smk: a wildcard-free rule answers by one set lookup
    each.is_producer = frozenset(map(str, each.products())).__contains__
"""


def floor_dry_run(workdir: Path, images: list[Path], labels: list[Path]) -> None:
    frames = [[str(image), str(label), image.stem] for image, label in zip(images, labels, strict=True)]
    (workdir / "frames.json").write_text(json.dumps(frames))
    (workdir / "Snakefile").write_text(FLOOR)
    command = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "--cores", "1", "-n"]
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)


# 4 models x 6 variants: the matrix issue's planning bound (under 10 s over 500 frames in 8 shards)
MATRIX = {
    "models": [
        {"name": name, "config": f"{name}_r50-d8_4xb2-40k_cityscapes-512x1024", "checkpoint": ""}
        for name in ("fcn", "pspnet", "deeplabv3plus")
    ],
    "variants": [
        "pytorch-fp32",
        "onnxruntime-fp32",
        "onnxruntime-int8",
        "openvino-fp32",
        "openvino-int8",
        "openvino-fp32-winograd",
    ],
    "reference": "pytorch-fp32",
}


def dry_run(workdir: Path, root: Path, settings: dict | None = None, target: str = "results/result.json") -> None:
    config = {"dataset": {"root": str(root)}, "model": {"checkpoint": ""}, **(settings or {})}
    (workdir / "config.yaml").write_text(json.dumps(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "-n"]
    subprocess.run([*command, target], cwd=workdir, check=True, capture_output=True)


def measure_matrix(count: int, repeats: int) -> list[object]:
    """Dry runs over ``count`` frames in 8 shards: one cell, and the 4 x 6 matrix (24 cells)."""
    with tempfile.TemporaryDirectory(prefix="bench_planning-") as scratch:
        root, workdir = Path(scratch) / "cityscapes", Path(scratch) / "work"
        workdir.mkdir()
        make_tree(root, count)
        one_cell_s = median_seconds(lambda: dry_run(workdir, root, {"shards": 8}), repeats)
        settings = {"shards": 8, "matrix": MATRIX}
        matrix_s = median_seconds(lambda: dry_run(workdir, root, settings, "results/matrix.json"), repeats)
    cells = (len(MATRIX["models"]) + 1) * len(MATRIX["variants"])
    return [str(count), "8", f"{one_cell_s:.2f}", str(cells), f"{matrix_s:.2f}"]


def measure(count: int, repeats: int) -> list[object]:
    with tempfile.TemporaryDirectory(prefix="bench_planning-") as scratch:
        root, workdir = Path(scratch) / "cityscapes", Path(scratch) / "work"
        workdir.mkdir()
        images, labels = make_tree(root, count)
        here = os.getcwd()
        try:
            result_path, inputs = kept_result(workdir, images, labels)
            fingerprint_s = median_seconds(lambda: (fingerprint(images), fingerprint(labels)), repeats)
            check_s = median_seconds(lambda: kept_result_problem(result_path, inputs, {}), repeats)
        finally:
            os.chdir(here)
        dry_s = median_seconds(lambda: dry_run(workdir, root), repeats)
        floor = Path(scratch) / "floor"
        floor.mkdir()
        floor_s = median_seconds(lambda: floor_dry_run(floor, images, labels), repeats)
    return [
        str(count),
        f"{fingerprint_s * 1000:.1f}",
        f"{check_s * 1000:.1f}",
        f"{dry_s:.2f}",
        f"{(fingerprint_s + check_s) / dry_s:.1%}",
        f"{floor_s:.2f}",
    ]
