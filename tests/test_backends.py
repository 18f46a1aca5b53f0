"""The backend registry: every backend plans its own model steps in the workflow, and the registry loads
without any runtime installed (the workflow imports it at parse time, on any machine)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from deeplabv3_pipeline import artifacts
from deeplabv3_pipeline.backends import REGISTRY

from .conftest import REPO
from .workflow import TINY, merged, snakemake, write_config

CONFIG = merged(yaml.safe_load((REPO / "config.yaml").read_text()), TINY)


def distinct_plans() -> list[tuple[str, str]]:
    """(backend, precision) pairs with different model steps; tensorrt's are tested in detail in
    tests/test_workflow.py (engines, calibration, device)."""
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
    return [step.format(model="deeplabv3") for step in REGISTRY[backend].model_steps(precision, CONFIG)]


PAIRS = distinct_plans()


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "precision"), PAIRS)
def test_every_backend_plans_the_steps_of_its_model_at_every_precision(tmp_path, backend, precision):
    write_config(tmp_path, merged(TINY, {"backend": backend, "precision": precision}))
    dry = snakemake(tmp_path, "-n", "-p").stdout
    planned = set(re.findall(r"^(?:local)?rule (\w+):", dry, flags=re.MULTILINE))
    steps = model_steps(backend, precision)
    assert {step.rule for step in steps} <= planned, planned
    model = steps[-1].output if steps else "results/demo/checkpoints/deeplabv3.pth"
    assert f"--backend {backend} --model {model} " in dry and f"--precision {precision}" in dry
    for step in steps:
        assert f"{step.log}" in dry, step  # the rule writes where artifacts.py says
    infer_rule = f"infer_deeplabv3_{backend}_{precision}"
    infer_inputs = re.search(rf"^rule {infer_rule}:\n\s+input: (.*)$", dry, flags=re.MULTILINE).group(1).split(", ")
    # what the runtime reads beside the model (an IR's weights) is declared too
    assert set(artifacts.companion_files(steps[-1]) if steps else []) <= set(infer_inputs)


def test_every_step_names_a_rule_of_the_workflow(tmp_path):
    write_config(tmp_path, TINY)
    rules = set(snakemake(tmp_path, "--list-rules").stdout.split())
    steps = [value for value in vars(artifacts).values() if isinstance(value, artifacts.Step)]
    # the data rules exist only where they have work (demo data, URL checkpoints, shards of one)
    # (the per-cell rules are named after their cell: infer_deeplabv3_onnxruntime_fp32, ...)
    cell_rules = {"infer", "gather_summaries", "evaluate"}
    assert {step.rule for step in steps} - {"fetch_checkpoint"} - cell_rules <= rules | {"preprocess"}
    assert {f"{stage}_deeplabv3_onnxruntime_fp32" for stage in cell_rules} <= rules


def test_the_registry_loads_without_any_runtime():
    """Every runtime import blocked: the specs, precisions and model steps are still there, and the plan
    (frames, models, cells: what the workflow imports at parse time) loads too."""
    blocked = ["onnxruntime", "openvino", "torch", "tensorrt", "cuda", "mmseg", "mmengine", "nncf"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from deeplabv3_pipeline.backends import BACKENDS, PRECISIONS\n"
        "import deeplabv3_pipeline.plan\n"
        "print(' '.join(BACKENDS), PRECISIONS['tensorrt'])\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert completed.stdout.split()[:5] == ["onnxruntime", "openvino", "pytorch", "tensorrt", "ascend"]
