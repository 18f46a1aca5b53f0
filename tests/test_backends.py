"""The backend registry: every backend plans its own model steps in the workflow, and the registry loads
without any runtime installed (the workflow imports it at parse time, on any machine)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from deeplabv3_pipeline.backends import (
    PATH_VARIABLE,
    REGISTRY,
    add_backend_arguments,
    backend_flags,
    open_backend,
    options,
)
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.planning import artifacts

from .conftest import REPO
from .workflow import TINY, copy_run, merged, snakemake, write_config

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
        "import deeplabv3_pipeline.planning.plan\n"
        "print(' '.join(BACKENDS), PRECISIONS['tensorrt'])\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert completed.stdout.split()[:5] == ["ascend", "onnxruntime", "openvino", "pytorch", "tensorrt"]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_backend_options_go_from_the_config_to_flags_and_back(name):
    """Each backend's options record, read from a config whose every option differs from its default,
    gives flags that a stage CLI parses back into the same record (config -> flag -> record written once)."""
    spec = REGISTRY[name]
    config = merged(
        CONFIG,
        {
            "model": {"config": "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024", "input_shape": [32, 48]},
            "onnxruntime": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
            "tensorrt": {"device": 3},
            "ascend": {"device": 2, "ais_bench": "python3.9 -m ais_bench --debug"},
        },
    )
    record = options.from_config(spec.options, config)
    for field in dataclasses.fields(record):
        assert getattr(record, field.name) != field.default, field.name
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    args = parser.parse_args(["--backend", name, *backend_flags(name, config)])
    assert options.from_namespace(spec.options, args) == record
    # no flags: the record's own defaults
    assert options.from_namespace(spec.options, parser.parse_args(["--backend", name])) == spec.options()


def test_a_flag_two_backends_share_is_declared_once():
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    flags = [flag for action in parser._actions for flag in action.option_strings]
    assert flags.count("--device") == 1 and "--ais-bench" in flags and "--providers" in flags
    assert parser.parse_args(["--backend", "onnxruntime", "--providers", "A", "B"]).providers == ["A", "B"]


def test_an_option_the_backend_lacks_is_refused_by_name(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    with pytest.raises(UserError, match="backend onnxruntime has no option device: it has providers"):
        open_backend("onnxruntime", model, device=1)


# ---------------------------------------------------------------- adding a backend: a test-only one

PLUGINS = REPO / "tests" / "backends"  # holds constant/, a backend subpackage of its own


def with_plugins() -> dict[str, str]:
    return dict(os.environ, **{PATH_VARIABLE: str(PLUGINS)})


def test_a_backend_subpackage_registers_itself_everywhere():
    """tests/backends/constant, found through $DEEPLABV3_BACKEND_PATH: the registry, the variants, the CLI
    flags and the config check know it with nothing else changed."""
    code = (
        "import argparse\n"
        "from deeplabv3_pipeline.backends import BACKENDS, add_backend_arguments\n"
        "from deeplabv3_pipeline.planning.variants import VARIANTS, CPU_VARIANTS\n"
        "parser = argparse.ArgumentParser(); add_backend_arguments(parser)\n"
        "args = parser.parse_args(['--backend', 'constant', '--input-shape', '8', '16'])\n"
        "print(' '.join(BACKENDS)); print('constant-fp32' in VARIANTS, 'constant-fp32' in CPU_VARIANTS)\n"
        "print(args.backend, args.input_shape)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=with_plugins()
    )
    assert completed.stdout.splitlines() == [
        "ascend constant onnxruntime openvino pytorch tensorrt",
        "True True",
        "constant [8, 16]",
    ]
    assert "constant" not in REGISTRY  # without the variable: only the package's own


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


def test_a_backend_folder_named_like_another_is_refused(tmp_path):
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text("def open_model(*args): ...\n")
    env = dict(os.environ, **{PATH_VARIABLE: str(tmp_path)})
    completed = subprocess.run(
        [sys.executable, "-c", "import deeplabv3_pipeline.backends"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert completed.returncode != 0
    assert (
        f"two backend folders are named onnxruntime, in {REPO / 'deeplabv3_pipeline' / 'backends'} and {tmp_path}"
        in (completed.stderr)
    )
