"""Each backend in the workflow: the model steps of every variant name rules of the workflow, and the
test-only backend (tests/backends/constant) runs as a cell."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.variants import VARIANTS

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


# every variant as a cell of one matrix (int8 calibrates on 2 of the 3 frames: its -mixed variants check on one;
# PyTorch on a GPU, where pytorch-fp16 runs)
EVERY_VARIANT = merged(
    TINY,
    {
        "int8": {"calibration_images": 2},
        "matrix": {"reference": "pytorch-fp32", "variants": list(VARIANTS)},
        "pytorch": {"device": "cuda:1"},
    },
)


def rule_blocks(dry_run: str) -> dict[str, str]:
    """The jobs of a `snakemake -n -p` output, by rule name (a per-cell rule's name is its cell's; the jobs
    of one rule, e.g. atc per precision and soc, one after the other)."""
    parts = re.split(r"^(?:local)?rule (\w+):\n", dry_run, flags=re.MULTILINE)
    blocks: dict[str, str] = {}
    for name, block in zip(parts[1::2], parts[2::2], strict=True):
        blocks[name] = blocks.get(name, "") + block
    return blocks


def test_every_variant_plans_the_steps_of_its_model_and_runs_the_model_they_make(tmp_path):
    """One dry run of a matrix of every registered variant (each backend at each precision, -winograd and
    -mixed): each cell plans the rules of its model's steps (artifacts.py's logs), and its inference reads
    the last step's model, with what the runtime reads beside it, at the variant's precision."""
    write_config(tmp_path, EVERY_VARIANT)
    blocks = rule_blocks(snakemake(tmp_path, "-n", "-p", "results/matrix.json").stdout)
    dry = "".join(blocks.values())
    config = merged(CONFIG, EVERY_VARIANT)
    for name, variant in VARIANTS.items():
        steps = [step.format(model=TINY_KEY) for step in variant.model_steps(config)]
        assert {step.rule for step in steps} <= set(blocks), name
        for step in steps:
            assert step.log in dry, (name, step)  # the rule writes where artifacts.py says
        infer = blocks[f"infer_deeplabv3_{name.replace('-', '_')}"]
        model = steps[-1].output if steps else DEMO_CHECKPOINT_PATH
        assert f"--backend {variant.backend} --model {model} " in infer and f"--precision {variant.precision}" in infer
        assert ("--torch-device cuda:1 --no-compile" in infer) == (variant.backend == "pytorch"), name
        inputs = re.search(r"^\s+input: (.*)$", infer, flags=re.MULTILINE).group(1).split(", ")
        # what the runtime reads beside the model (an IR's weights, an engine's record) is declared too
        assert set(artifacts.companion_files(steps[-1]) if steps else []) <= set(inputs), name


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
