"""The workflow's start check over the model zoo: for each chosen entry, whether it builds, runs and
exports to ONNX here, or why not, as the check before any job decides it (mmseg_model.run_problem, random
weights on a 128x256 zero image, ONNX at the given opset with the export's exact rewrites).

``scripts/zoo.py check`` prints it; docs/zoo-support.md holds the table measured over one entry per
family. It says which models a run accepts; the agreement of each backend with PyTorch is the matrix's
(results/matrix.json) over the models it accepts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.zoo import ZooEntry, resolve_config


@dataclass(frozen=True)
class EntryCheck:
    entry: ZooEntry
    test_mode: str  # "whole", "slide, crops ...", or "-" where the model does not build
    problem: str | None  # None: it builds, runs and exports
    seconds: float

    @property
    def family(self) -> str:
        return family_of(self.entry)


def family_of(entry: ZooEntry) -> str:
    """The configs/<family>/ folder the metafile lists the entry's config in."""
    return Path(entry.config).parent.name


def one_per_family(entries: Iterable[ZooEntry]) -> list[ZooEntry]:
    """The first entry of each family, in metafile order."""
    chosen: dict[str, ZooEntry] = {}
    for entry in entries:
        chosen.setdefault(family_of(entry), entry)
    return list(chosen.values())


def check_entry(entry: ZooEntry, opset: int) -> EntryCheck:
    """The start check of one entry (seconds: a build, one PyTorch pass and an export at 128x256)."""
    from deeplabv3_pipeline.model.mmseg_model import PROBE_SHAPE, SegmentationExport, build_model, run_problem

    start = time.perf_counter()
    mode = "-"
    try:
        resolve_config(entry.name)
        problem = run_problem(entry.name, opset)
        if problem is None or not problem.startswith("it does not build"):
            mode = SegmentationExport(build_model(entry.name), PROBE_SHAPE).mode.describe()
    except UserError as error:  # a metafile naming a config mmseg does not ship
        problem = f"its config is not in mmsegmentation ({str(error).split(':')[0]})"
    return EntryCheck(entry, mode, problem, time.perf_counter() - start)


def check_rows(checks: Sequence[EntryCheck], opset: int) -> tuple[list[str], list[list[str]]]:
    header = ["family", "entry (model.config)", "test mode", f"runs and exports here (opset {opset})", "check s"]
    rows = [
        [
            check.family,
            check.entry.name,
            check.test_mode,
            "yes" if check.problem is None else f"no: {check.problem}",
            f"{check.seconds:.1f}",
        ]
        for check in checks
    ]
    return header, rows
