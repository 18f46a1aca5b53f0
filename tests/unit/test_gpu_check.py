"""The prepared GPU check (scripts/gpu_check.py, deeplabv3_pipeline/benchmark/gpu_check.py).

Here (no GPU): which wheels it brings and which of them install on which Python, the budget, what it says
where the machine lacks something, its dry run, and its steps run end to end on the CPU at a small size
with scipy stood in (`--device cpu`), as they will run on a GPU machine.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from deeplabv3_pipeline.benchmark import gpu_check
from deeplabv3_pipeline.benchmark.gpu_check import budget_problem, download_commands, runs_here, wheel_requirements
from deeplabv3_pipeline.errors import UserError

from ..conftest import MODEL_CONFIG, REPO, run_script


@pytest.mark.parametrize(
    ("name", "version", "installs"),
    [
        ("mmengine-0.10.7-py3-none-any.whl", (3, 10), True),
        ("mmcv_lite-2.1.0-py2.py3-none-any.whl", (3, 12), True),
        ("opencv_python_headless-4.11.0.86-cp37-abi3-manylinux2014_x86_64.whl", (3, 11), True),
        ("wcwidth-0.9.5-cp310-abi3-manylinux2014_x86_64.whl", (3, 10), True),
        ("wcwidth-0.9.5-cp312-abi3-manylinux2014_x86_64.whl", (3, 11), False),
        ("regex-2026.11.19-cp311-cp311-manylinux2014_x86_64.whl", (3, 11), True),
        ("regex-2026.11.19-cp311-cp311-manylinux2014_x86_64.whl", (3, 12), False),
    ],
)
def test_a_wheel_installs_where_its_tags_say(name, version, installs):
    assert runs_here(Path(name), version) is installs


def test_the_wheels_are_the_project_pins_and_regex_comes_for_every_python():
    specs = wheel_requirements(REPO / "requirements.txt")
    assert "mmsegmentation==1.2.2" in specs and "mmcv-lite==2.1.0" in specs and "regex==2026.11.19" in specs
    assert gpu_check.OPENCV_WHEEL in specs and len(specs) == len(gpu_check.WHEELS)
    commands = download_commands(specs, Path("wheels"))
    assert len(commands) == 1 + len(gpu_check.PYTHONS)  # the pure/abi3 ones once, regex per Python
    for command in commands:
        assert {"--no-deps", "--only-binary=:all:"} <= set(command)
    per_python = [command for command in commands if "regex==2026.11.19" in command]
    assert [command[command.index("--abi") + 1] for command in per_python] == ["cp311", "cp312", "cp313"]


def test_wheels_past_what_a_device_call_carries_are_refused(tmp_path):
    wheel = tmp_path / "big-1.0-py3-none-any.whl"
    wheel.write_bytes(b"\0" * (3 << 20))
    assert budget_problem([wheel], tree_bytes=1 << 20, limit_mib=4) is None
    problem = budget_problem([wheel], tree_bytes=2 << 20, limit_mib=4)
    assert problem and "5.0 MiB, over the 4 MiB a device call carries" in problem and "--skip NAME" in problem


def test_what_the_machine_lacks_without_a_wheel_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "missing_modules", lambda: (["mmseg", "cv2"], [], ["yaml"]))
    result = run_script("gpu_check.py", "run", "--wheels", tmp_path, "--work", tmp_path / "w", "--dry-run", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: this machine lacks yaml, mmseg, cv2 and ") and "gpu_check.py wheels" in (
        result.stderr
    )


def test_the_dry_run_installs_what_has_a_wheel_and_plans_the_cells_on_the_gpu(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "mmsegmentation-1.2.2-py3-none-any.whl").write_bytes(b"")
    here = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    (wheels / f"regex-2026.11.19-{here}-{here}-manylinux2014_x86_64.whl").write_bytes(b"")
    monkeypatch.setattr(gpu_check, "missing_modules", lambda: (["mmseg", "regex"], ["scipy"], []))
    result = run_script("gpu_check.py", "run", "--wheels", wheels, "--work", tmp_path / "w", "--dry-run")
    lines = result.stdout.splitlines()
    assert lines[0] == "machine: installed from the wheels: mmseg, regex; stood in for (never called): scipy"
    steps = [line.split(":")[0] for line in lines[1:]]
    assert steps[:4] == ["frames", "labels", "preprocess", "checkpoint"]
    assert steps[4:6] == ["infer pytorch-fp32-cpu", "evaluate pytorch-fp32-cpu"]  # the reference first
    assert [step for step in steps if step.startswith("infer")][1:] == [f"infer {name}" for name in gpu_check.RUNS]
    gpu_runs = [line for line in lines if line.startswith("infer pytorch-") and "cpu:" not in line]
    assert all("--torch-device cuda:0" in line for line in gpu_runs)
    assert "--compile" in gpu_runs[-1].split() and "--precision fp16" in gpu_runs[-1]
    assert "train_demo_checkpoint.py" in lines[4] and "--shape 1024 2048" in lines[1]
    assert not (tmp_path / "w").exists()  # a dry run makes nothing


def test_the_checks_steps_run_on_the_cpu_with_scipy_stood_in(checkpoint, tmp_path):
    """`--device cpu`: the frames, labels, bins, the reference and one run, with scipy stood in (mmseg imports
    it, the check never calls it): the table and the cells' files in --out. (A checkpoint given: the tests'
    random one of the tiny config; the check's own checkpoint steps are the workflow's.)"""
    out = tmp_path / "out"
    args = ("--work", tmp_path / "work", "--out", out, "--device", "cpu", "--shape", 64, 128, "--images", 2)
    args += ("--checkpoint", checkpoint, "--model-config", MODEL_CONFIG)
    run_script("gpu_check.py", "run", *args, "--runs", "pytorch-fp32", "--stand-in", "scipy")
    assert (tmp_path / "work" / "stand_ins" / "scipy" / "ndimage" / "__init__.py").is_file()
    figures = json.loads((out / "gpu_check.json").read_text())
    rows = {row["run"]: row for row in figures["rows"]}
    assert list(rows) == ["pytorch-fp32-cpu", "pytorch-fp32"]
    assert rows["pytorch-fp32"]["agreement_with_cpu_fp32"] == 1.0 and rows["pytorch-fp32"]["images"] == 2
    assert rows["pytorch-fp32"]["compute_images_per_s"] > 0 and rows["pytorch-fp32"]["inference_precision"] == "fp32"
    assert figures["preflight"].endswith("stood in for (never called): scipy")
    table = (out / "benchmark.md").read_text()
    assert "| pytorch-fp32 | fp32 |" in table and "agreement with CPU fp32" in table
    for name in rows:
        result = tmp_path / "work" / "cells" / name / "result.json"
        assert json.loads(result.read_text())["variant"] == "pytorch-fp32"
    assert sorted(path.name for path in out.iterdir()) == ["benchmark.md", "cells_and_logs.tar.gz", "gpu_check.json"]
    with tarfile.open(out / "cells_and_logs.tar.gz") as bundle:
        names = bundle.getnames()
    assert "cells/pytorch-fp32/result.json" in names and "logs/infer_pytorch-fp32.log" in names


def test_an_unknown_run_is_refused_naming_the_valid_ones():
    with pytest.raises(UserError, match="--runs: unknown run 'pytorch-int8': choose from pytorch-fp32, "):
        gpu_check.get_runs(["pytorch-int8"])


def test_a_checkpoint_that_is_not_there_is_refused_before_any_step(tmp_path):
    result = run_script(
        "gpu_check.py", "run", "--work", tmp_path / "w", "--checkpoint", tmp_path / "x.pth", check=False
    )
    assert result.returncode == 2 and "is neither trained, random nor a checkpoint file" in result.stderr
    assert not (tmp_path / "w").exists()


def script_module():
    from ..conftest import _script_module

    return _script_module("gpu_check.py")


def test_a_failed_gpu_run_skips_its_evaluation_and_the_next_run_goes_on(tmp_path, monkeypatch):
    """One run's failure (an inductor error, bf16 on an old GPU) costs that run's row, not the check."""
    module = script_module()
    layout = gpu_check.Layout(tmp_path / "w", tmp_path / "o")
    config = {"model": {"config": "m"}, "demo": {"seed": 0, "training": {}}}
    runs = gpu_check.get_runs(["pytorch-fp16", "pytorch-fp16-compiled", "pytorch-bf16"])
    steps = gpu_check.plan(layout, runs, config=config, images=1, shape=(8, 16), device="cuda:0",
                           checkpoint="random", warmup=1)  # fmt: skip
    ran = []

    def run_step(step, env, logs):
        ran.append(step.name)
        if step.name == "infer pytorch-fp16-compiled":
            raise UserError("step infer pytorch-fp16-compiled failed (exit 1): inductor")
        return 1.0

    monkeypatch.setattr(module, "run_step", run_step)
    args = SimpleNamespace(checkpoint="random", model_config=None)
    seconds, failed, checkpoint = module.run_steps(steps, args, layout, config, {})
    assert failed == {"pytorch-fp16-compiled": "step infer pytorch-fp16-compiled failed (exit 1): inductor"}
    assert "evaluate pytorch-fp16-compiled" not in ran and ran[-2:] == ["infer pytorch-bf16", "evaluate pytorch-bf16"]
    assert checkpoint == "random" and "infer pytorch-fp16-compiled" not in seconds
    row = gpu_check.failed_row("pytorch-fp16-compiled", failed["pytorch-fp16-compiled"])
    assert "| pytorch-fp16-compiled | - |" in "\n".join(gpu_check.table([row]))


def test_training_that_fails_falls_back_to_the_random_checkpoint_and_says_so(tmp_path, monkeypatch):
    module = script_module()
    layout = gpu_check.Layout(tmp_path / "w", tmp_path / "o")
    config = {"model": {"config": "m"}, "demo": {"seed": 0, "training": {"iterations": 1, "batch_size": 1,
              "crop": [8, 8], "frame_shape": [8, 8], "frames": 1, "lr": 0.1}}}  # fmt: skip
    steps = gpu_check.plan(layout, [], config=config, images=1, shape=(8, 16), device="cuda:0",
                           checkpoint="trained", warmup=1)  # fmt: skip
    ran = []

    def run_step(step, env, logs):
        ran.append((step.name, step.script))
        if step.script == "train_demo_checkpoint.py":
            raise UserError("step checkpoint failed (exit 1): distutils")
        return 1.0

    monkeypatch.setattr(module, "run_step", run_step)
    _, failed, checkpoint = module.run_steps(steps, SimpleNamespace(checkpoint="trained", model_config=None),
                                             layout, config, {})  # fmt: skip
    assert ("checkpoint_random", "make_demo_data.py") in ran and failed == {}
    assert checkpoint == "random (training failed: logs/checkpoint.log)"
    with pytest.raises(UserError, match="infer pytorch-fp32-cpu"):  # the reference's failure stops the check

        def broken_reference(step, env, logs):
            if step.cell == gpu_check.REFERENCE:
                raise UserError("step infer pytorch-fp32-cpu failed")
            return 1.0

        monkeypatch.setattr(module, "run_step", broken_reference)
        module.run_steps(steps, SimpleNamespace(checkpoint="trained", model_config=None), layout, config, {})
