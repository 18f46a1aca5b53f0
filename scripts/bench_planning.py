#!/usr/bin/env python3
"""What planning costs: a dry run of results/result.json over N frames, and the input checks in it.

    python scripts/bench_planning.py --frames 500 3000

For each N it lays out a Cityscapes-shaped tree of N frames (empty placeholder PNGs: planning never
reads an image), then times (median of ``--repeats``):
- ``fingerprint``: provenance.fingerprint over the N images (one stat each; a param of preprocess,
  so a replaced image is preprocessed again whatever its mtime), and over the N labels;
- ``kept result check``: provenance.kept_result_problem over a result listing N predictions and N
  labels (the check that stops "Nothing to be done" while a listed file is missing);
- ``dry run``: ``snakemake -n results/result.json`` on that tree, whole (parsing, frames, DAG).
Prints a Markdown table; the check's share of the dry run is the figure that matters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deeplabv3_pipeline.provenance import file_sizes, fingerprint, kept_result_problem
from deeplabv3_pipeline.tables import markdown_table

REPO = Path(__file__).resolve().parent.parent
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


def dry_run(workdir: Path, root: Path) -> None:
    (workdir / "config.yaml").write_text(json.dumps({"dataset": {"root": str(root)}, "model": {"checkpoint": ""}}))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "-n"]
    subprocess.run([*command, "results/result.json"], cwd=workdir, check=True, capture_output=True)


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
    return [
        str(count),
        f"{fingerprint_s * 1000:.1f}",
        f"{check_s * 1000:.1f}",
        f"{dry_s:.2f}",
        f"{(fingerprint_s + check_s) / dry_s:.1%}",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[500, 3000])
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [measure(count, args.repeats) for count in args.frames]
    header = ["frames", "fingerprint ms (images + labels)", "kept result check ms", "dry run s", "checks' share"]
    print("\n".join(markdown_table(header, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
