"""What is checked of a plan's models before any job (at parse time, not in an input function:
Snakemake drops a job whose input function fails when its output exists). Each check loads or runs a
model (seconds), so its passes are kept (provenance.cached_check) under a key of what it depends on.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.provenance import cached_check, environment_versions, fingerprint, user_cache_dir
from deeplabv3_pipeline.model.zoo import resolve_config
from deeplabv3_pipeline.planning.plan import Plan

# Checkpoints that fitted their config, by the file's fingerprint: a fact of this folder's inputs.
FIT_CACHE = Path(".snakemake/deeplabv3/checkpoints_that_fit.json")


def _mmseg_check(name: str, *args: object) -> None:
    """mmseg_model's check ``name``, imported when a check runs: importing it imports torch (seconds),
    which a parse whose checks all passed before never needs."""
    from deeplabv3_pipeline.model import mmseg_model

    getattr(mmseg_model, name)(*args)


def runs_cache() -> Path:
    """Configs whose model ran here, by the config file and the installed packages (the key holds both):
    a fact of the environment, not of this folder, so kept per user."""
    return user_cache_dir() / "models_that_run.json"


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
            raise UserError(f"model {model.name}: {error}") from None


def check_models_run(plan: Plan, cache: Path | None = None) -> dict[str, str]:
    """Every model builds and its export graph runs here (mmseg_model.run_problem), and exports to ONNX at
    model.opset where a cell runs more than the checkpoint in PyTorch: a model that calls one of mmcv-full's
    compiled kernels, as PSANet does, or an operator the opset lacks, is refused with the reason, not left
    to fail in a job. A model of ``zoo.support`` that cannot run is not an error: returns {its name: why},
    for the support table (plan.without)."""
    cache = cache or runs_cache()
    versions = environment_versions()  # the same for every model: read once
    opset = int(plan.config["model"]["opset"])
    support = {entry.model for entry in plan.support}
    refused: dict[str, str] = {}
    for model in plan.models:
        exported = any(cell.model == model.name and cell.backend != "pytorch" for cell in plan.cells)
        try:
            config_file = str(resolve_config(model.config))
            key = f"{fingerprint([config_file])} {config_file} {versions}" + (
                f" onnx opset {opset}" if exported else ""
            )
            cached_check(
                cache, key, partial(_mmseg_check, "check_model_runs", model.config, opset if exported else None)
            )
        except UserError as error:
            if model.name not in support:
                raise UserError(f"model {model.name}: {error}") from None
            # the clause alone (ModelCannotRun), or why its config cannot be found
            refused[model.name] = getattr(error, "reason", str(error))
    return refused
