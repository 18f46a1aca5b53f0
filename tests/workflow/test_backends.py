"""Each backend in the workflow: the model steps it plans at every precision name rules of the workflow, and
the test-only backend (tests/backends/constant) runs as a cell."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from deeplabv3_pipeline.backends import (
    REGISTRY,
)
from deeplabv3_pipeline.planning import artifacts

from ..helpers import (
    CONFIG,
    DEMO_CHECKPOINT_PATH,
    TINY,
    TINY_KEY,
    copy_run,
    merged,
    snakemake,
    with_plugins,
    write_config,
)

pytestmark = pytest.mark.slow


def distinct_plans() -> list[tuple[str, str]]:
    """(backend, precision) pairs with different model steps; tensorrt's are tested in detail in
    tests/workflow/test_workflow.py (engines, calibration, device)."""
    seen, pairs = set(), []
    for name, spec in REGISTRY.items():
        for precision in spec.precisions:
            steps = (name, tuple(spec.model_steps(precision, CONFIG)))
            if name != "tensorrt" and steps not in seen:
                seen.add(steps)
                pairs.append((name, precision))
    return pairs


def model_steps(backend: str, precision: str) -> list[artifacts.Step]:
    """The steps of the configured model's cell, with its name filled in (as the plan names them)."""
    return [step.format(model=TINY_KEY) for step in REGISTRY[backend].model_steps(precision, CONFIG)]


PAIRS = distinct_plans()


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "precision"), PAIRS)
def test_every_backend_plans_the_steps_of_its_model_at_every_precision(tmp_path, backend, precision):
    write_config(tmp_path, merged(TINY, {"backend": backend, "precision": precision}))
    dry = snakemake(tmp_path, "-n", "-p").stdout
    planned = set(re.findall(r"^(?:local)?rule (\w+):", dry, flags=re.MULTILINE))
    steps = model_steps(backend, precision)
    assert {step.rule for step in steps} <= planned, planned
    model = steps[-1].output if steps else DEMO_CHECKPOINT_PATH
    assert f"--backend {backend} --model {model} " in dry and f"--precision {precision}" in dry
    for step in steps:
        assert f"{step.log}" in dry, step  # the rule writes where artifacts.py says
    infer_rule = f"infer_deeplabv3_{backend}_{precision}"
    infer_inputs = re.search(rf"^rule {infer_rule}:\n\s+input: (.*)$", dry, flags=re.MULTILINE).group(1).split(", ")
    # what the runtime reads beside the model (an IR's weights) is declared too
    assert set(artifacts.companion_files(steps[-1]) if steps else []) <= set(infer_inputs)


def test_every_step_names_a_rule_of_the_workflow(tmp_path):
    write_config(tmp_path, merged(TINY, {"debug": {"variants": ["onnxruntime-fp32"]}}))
    rules = set(snakemake(tmp_path, "--list-rules").stdout.split())
    steps = [value for value in vars(artifacts).values() if isinstance(value, artifacts.Step)]
    # the data rules exist only where they have work (demo data, URL checkpoints, shards of one)
    # (the per-cell rules are named after their cell: infer_deeplabv3_onnxruntime_fp32, ...)
    cell_rules = {"infer", "gather_summaries", "evaluate", "compare_layers"}
    assert {step.rule for step in steps} - {"fetch_checkpoint"} - cell_rules <= rules | {"preprocess"}
    assert {f"{stage}_deeplabv3_onnxruntime_fp32" for stage in cell_rules} <= rules


@pytest.mark.slow
def test_a_test_only_backend_runs_as_a_cell_of_the_workflow(tiny_run, tmp_path):
    """`backend: constant` after the tiny run: only its cell's inference and evaluation run, and its
    result.json holds the figures of a prediction of class 0 everywhere."""
    workdir = copy_run(tiny_run, tmp_path / "run")
    write_config(workdir, merged(TINY, {"backend": "constant"}))
    run = snakemake(workdir, env=with_plugins())
    ran = set(re.findall(r"^(?:local)?rule (\w+):", run.stdout, flags=re.M))
    assert ran == {
        "infer_deeplabv3_constant_fp32",
        "gather_summaries_deeplabv3_constant_fp32",
        "evaluate_deeplabv3_constant_fp32",
        "result",
        "report_figures",
        "all",
    }, ran
    result = json.loads((workdir / "results" / "result.json").read_text())
    assert result["backend"] == "constant" and result["variant"] == "constant-fp32"
    assert result["inference_precision"] == "fp32"
    predicted = np.asarray(result["confusion_matrix"]["counts"]).sum(axis=0)  # columns: predicted trainIds
    assert predicted[0] > 0 and predicted[1:].sum() == 0
