"""The workflow's start check over the model zoo: for each chosen entry, whether it builds, runs and
exports to ONNX here, or why not, as the check before any job decides it (mmseg_model.run_problem, random
weights on a 128x256 zero image, ONNX at the given opset with the export's exact rewrites).

``scripts/zoo.py check`` prints it; docs/zoo-support.md holds the table measured over one entry per
family. It says which models a run accepts. The support table (:func:`support_table`, rule zoo_support,
``results/zoo/support.md``) adds what the matrix measured of the entries of ``zoo.support``: each
variant's pixel agreement with the reference, or the reason an entry got no jobs, and the ATC command
planned for it per soc_version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.zoo import ZooEntry, family_of, resolve_config


@dataclass(frozen=True)
class EntryCheck:
    entry: ZooEntry
    test_mode: str  # "whole", "slide, crops ...", or "-" where the model does not build
    problem: str | None  # None: it builds, runs and exports
    seconds: float

    @property
    def family(self) -> str:
        return family_of(self.entry)


def check_entry(entry: ZooEntry, opset: int) -> EntryCheck:
    """The start check of one entry (seconds: a build, one PyTorch pass and an export at 128x256)."""
    from mmengine.config import Config

    from deeplabv3_pipeline.model.inference_mode import inference_mode
    from deeplabv3_pipeline.model.mmseg_model import run_problem

    start = time.perf_counter()
    mode = "-"
    try:
        config_file = resolve_config(entry.name)
        problem = run_problem(entry.name, opset)
        if problem is None or not problem.startswith("it does not build"):
            # the mode the export wrapper takes: the config's test_cfg (read, not a second build)
            mode = inference_mode(Config.fromfile(str(config_file)).model.get("test_cfg")).describe()
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


# The opset the guide exports at, which its ATC command takes (FORMATS.md)
ATC_OPSET = 11


def support_table(
    matrix: Mapping[str, Any],
    entries: Sequence[tuple[str, str, str]],
    refused: Mapping[str, str],
    atc: Mapping[str, Mapping[str, str]] | None = None,
    opset: int = ATC_OPSET,
) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """The support table of ``entries`` ((model, entry, family) each) from a matrix.json's rows: header,
    Markdown rows and JSON records. An entry in ``refused`` ({model: why}) has no cells: its row says why.
    ``atc`` ({model: {soc_version: command}}): the ATC command the workflow plans for each accepted entry
    (an .om per soc_version, fp16), a column per soc_version; planned, not run (ATC needs CANN). ``opset``:
    the run's model.opset; another than the guide's 11, the column says so (ATC's opset support is CANN's)."""
    atc = atc or {}
    reference = matrix["reference"]
    variants = list(dict.fromkeys(row["variant"] for row in matrix["rows"] if row["variant"] != reference))
    cells = {(row["model"], row["variant"]): row for row in matrix["rows"]}
    socs = list(dict.fromkeys(soc for commands in atc.values() for soc in commands))
    planned = "planned" if opset == ATC_OPSET else f"planned at opset {opset} (the guide's ATC takes {ATC_OPSET})"
    header = [
        "family",
        "entry (model.config)",
        "runs here",
        *(f"{variant} agreement" for variant in variants),
        *(f"ATC {soc} fp16" for soc in socs),
    ]
    rows, records = [], []
    for model, entry, family in entries:
        reason = refused.get(model)
        if reason is None and (model, reference) not in cells:
            raise UserError(f"the matrix has no cell of {model} ({entry}): is it the matrix of this config?")
        agreement = {
            variant: cells[model, variant]["pixel_agreement"] for variant in variants if (model, variant) in cells
        }
        commands = dict(atc.get(model, {})) if reason is None else {}
        runs = "yes" if reason is None else f"no: {reason}"
        rows.append(
            [
                family,
                entry,
                runs,
                *(_agreement(agreement.get(variant)) for variant in variants),
                *(planned if soc in commands else "-" for soc in socs),
            ]
        )
        records.append(
            {
                "family": family,
                "entry": entry,
                "model": model,
                "runs": reason is None,
                "reason": reason,
                "pixel_agreement": agreement,
                "atc_commands": commands,
            }
        )
    return header, rows, records


def _agreement(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
