"""What is checked of a plan's models before any job (at parse time, not in an input function:
Snakemake drops a job whose input function fails when its output exists). Each check loads or runs a
model (seconds), so its passes are kept (provenance.cached_check) under a key of what it depends on.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.provenance import (
    cached_check,
    cached_value,
    environment_versions,
    fingerprint,
    user_cache_dir,
)
from deeplabv3_pipeline.model.footprint import FOOTPRINT_FORMAT, Footprint
from deeplabv3_pipeline.model.zoo import resolve_config
from deeplabv3_pipeline.planning.keys import given_name
from deeplabv3_pipeline.planning.plan import Plan

# Checkpoints that fitted their config, by the file's fingerprint: a fact of this folder's inputs.
FIT_CACHE = Path(".snakemake/deeplabv3/checkpoints_that_fit.json")
# The libraries a check builds, loads and exports models with: their warnings (mmseg's and mmengine's
# deprecations of their own API, torch's exporter) are about their code, nothing a user of the workflow can act on.
LIBRARY_MODULES = ("mmseg", "mmengine", "mmcv", "torch", "torchvision", "onnx", "onnxruntime")


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """While it lasts, the libraries' warnings (any category, from :data:`LIBRARY_MODULES`) and torch's
    ``TracerWarning`` (which names the traced line, ours or mmseg's) are not shown: a start check's
    model would otherwise print them before the run's banner. Other warnings are shown as before; the
    filters are restored on exit. Imports torch (only where a check runs a model)."""
    from torch.jit import TracerWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=rf"(?:{'|'.join(LIBRARY_MODULES)})(?:\.|$)")
        warnings.filterwarnings("ignore", category=TracerWarning)
        yield


def _mmseg_check(name: str, *args: object) -> Any:
    """mmseg_model's check ``name``, imported when a check runs: importing it imports torch (seconds),
    which a parse whose checks all passed before never needs. The libraries' warnings are not shown."""
    with quiet_library_warnings():
        from deeplabv3_pipeline.model import mmseg_model

        return getattr(mmseg_model, name)(*args)


def _footprint_json(config: str, opset: int | None) -> dict[str, Any]:
    return _mmseg_check("check_model_runs", config, opset).to_json()


def runs_cache() -> Path:
    """The footprints of configs whose model ran here, by the config file and the installed packages (the
    key holds both): a fact of the environment, not of this folder, so kept per user."""
    return user_cache_dir() / "models_that_run_footprints.json"


@dataclass(frozen=True)
class ModelsRun:
    """What check_models_run found: the zoo.support models refused ({name: why}), and each other model's
    footprint ({name: Footprint}: what its export jobs are sized from)."""

    refused: dict[str, str]
    footprints: dict[str, Footprint]


def check_checkpoints_fit(plan: Plan, cache: Path = FIT_CACHE) -> None:
    """Each model's checkpoint, where it is the user's own file, fits the model's config (an FCN checkpoint
    given for PSPNet is an error naming both and the mismatched keys)."""
    for model in plan.models:
        path = plan.user_checkpoint(model.name)
        if not path or not Path(path).is_file():
            continue
        try:
            check = partial(_mmseg_check, "check_checkpoint_fits", model.config, path)
            cached_check(cache, f"{fingerprint([path])} {model.config}", check)
        except UserError as error:
            raise UserError(f"model {given_name(model.name)}: {error}") from None


def check_models_run(plan: Plan, cache: Path | None = None) -> ModelsRun:
    """Every model builds and its export graph runs here (mmseg_model.run_problem), and exports to ONNX at
    model.opset where a cell runs more than the checkpoint in PyTorch: a model that calls one of mmcv-full's
    compiled kernels, as PSANet does, or an operator the opset lacks, is refused with the reason, not left
    to fail in a job. A model of ``zoo.support`` that cannot run is not an error: it is among the refused
    ({its name: why}), for the support table (plan.without). Each model that runs has its footprint."""
    cache = cache or runs_cache()
    versions = environment_versions()  # the same for every model: read once
    opset = int(plan.config["model"]["opset"])
    support = {entry.model for entry in plan.support}
    refused: dict[str, str] = {}
    footprints: dict[str, Footprint] = {}
    for model in plan.models:
        exported = any(cell.model == model.name and cell.backend != "pytorch" for cell in plan.cells)
        try:
            config_file = str(resolve_config(model.config))
            key = f"{fingerprint([config_file])} {config_file} {versions}" + (
                f" onnx opset {opset}" if exported else ""
            )
            # a footprint in the key's format: an older version's entry is measured again
            key += f" footprint {FOOTPRINT_FORMAT}"
            measure = partial(_footprint_json, model.config, opset if exported else None)
            # an entry damaged by hand is not a footprint: measured again
            footprints[model.name] = Footprint.from_json(cached_value(cache, key, measure)) or Footprint.from_json(
                measure()
            )
        except UserError as error:
            if model.name not in support:
                raise UserError(f"model {given_name(model.name)}: {error}") from None
            # the clause alone (ModelCannotRun), or why its config cannot be found
            refused[model.name] = getattr(error, "reason", str(error))
    return ModelsRun(refused, footprints)
