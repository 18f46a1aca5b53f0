"""Shared fixtures: a tiny synthetic Cityscapes tree, a random checkpoint in the real format, its ONNX."""

from __future__ import annotations

import functools
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHAPE = (64, 128)  # small enough for seconds per stage, large enough for the 1/8 feature map


def run_script(name: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/<name>`` as a user would, capturing its output."""
    command = [sys.executable, str(REPO / "scripts" / name), *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and completed.returncode != 0:
        raise AssertionError(f"{name} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return completed


def run_infer(backend: str, model: Path, inputs: Path | list[Path], output: Path, *extra: object, check: bool = True):
    """``scripts/infer.py`` with its four main flags (``inputs``: a folder, or files as the workflow gives)."""
    sources = inputs if isinstance(inputs, list) else [inputs]
    return run_script(
        "infer.py", "--backend", backend, "--model", model, "--input", *sources, "--output", output, *extra, check=check
    )


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deeplabv3_pipeline.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("cityscapes")
    make_demo_dataset(root, "val", 4, SHAPE, seed=1)
    return root


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint
    from deeplabv3_pipeline.model.zoo import DEFAULT_CONFIG

    return make_random_checkpoint(DEFAULT_CONFIG, tmp_path_factory.mktemp("ckpt") / "random.pth", seed=3)


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> tuple[Path, Path]:
    """(exported, simplified) ONNX of the random checkpoint at SHAPE, made by the CLIs."""
    folder = tmp_path_factory.mktemp("models")
    exported, simplified = folder / "deeplabv3.onnx", folder / "deeplabv3_sim_bs1.onnx"
    run_script(
        "export_onnx.py",
        "deeplabv3_r50-d8_512x1024_40k_cityscapes",
        "--checkpoint",
        checkpoint,
        "--output-file",
        exported,
        "--shape",
        *SHAPE,
        "--verify",
    )
    run_script("simplify_onnx.py", exported, simplified, "--input-shape", f"1,3,{SHAPE[0]},{SHAPE[1]}")
    return exported, simplified


@pytest.fixture(scope="session")
def prep_dir(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Path:
    folder = tmp_path_factory.mktemp("prep_dataset")
    run_script("preprocess.py", demo_root / "leftImg8bit" / "val", folder, "--input-shape", *SHAPE)
    return folder


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory: pytest.TempPathFactory, onnx_models, prep_dir) -> tuple[Path, dict]:
    """The random checkpoint's simplified ONNX quantized by the CLI on 2 of the 4 demo bins."""
    output = tmp_path_factory.mktemp("int8") / "deeplabv3_sim_bs1_int8.onnx"
    run_script(
        "quantize_onnx.py",
        onnx_models[1],
        output,
        "--calibration-data",
        prep_dir,
        "--calibration-images",
        2,
        "--check-images",
        1,
    )
    return output, json.loads(output.with_suffix(".json").read_text())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run of the default target's result on the tiny demo (read-only: tests copy it)."""
    from .helpers import scenario, snakemake, write_config

    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, scenario("tiny"))
    run = snakemake(workdir, "results/result.json")
    assert "SYNTHETIC" in run.stdout  # the demo says loudly what it is
    return workdir


@pytest.fixture(scope="session")
def matrix_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run, then `snakemake results/matrix.json` of 2 models x 3 variants (read-only: tests copy it)."""
    from .helpers import copy_run, scenario, snakemake, write_config

    workdir = copy_run(tiny_run, tmp_path_factory.mktemp("matrix") / "run")
    write_config(workdir, scenario("matrix"))
    run = snakemake(workdir, "results/matrix.json")
    assert "evaluate_deeplabv3_onnxruntime_fp32" not in run.stdout  # the tiny run's cell is reused
    return workdir


# ---------------------------------------------------------------- the inner loop: make test-fast

# What starts a process in a test or a fixture: the helpers that run a stage CLI or Snakemake, or subprocess.
SPAWNING = re.compile(r"\b(run_script|run_infer|snakemake|planned_rules|clean_figures|Popen|subprocess\.\w+)\s*\(")


@functools.cache
def _starts_a_process(function: object) -> bool:
    try:
        return bool(SPAWNING.search(inspect.getsource(function)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``spawns`` every test that starts a process, in its own code or in a fixture it uses (read from
    their source), so that `make test-fast` (``-m "not slow and not spawns"``) runs the in-process tests
    alone, and a new test that starts one leaves the inner loop by itself.

    And put each test in a group for `make test`'s two pytest-xdist workers (``--dist loadgroup``: a group
    runs in one worker, groups go to whichever worker is free): the tests built on the matrix run; those
    built on the tiny run alone; the unit and CLI tests, which share the unit fixtures' models; the other
    workflow tests (dry runs, runs of their own). A session fixture is made once per worker that needs it
    (the tiny run at most twice: the matrix run starts from it), and the two workers run side by side
    (much of the suite is single-threaded Python start-up: docs/performance.md)."""
    for item in items:
        workflow = Path(str(item.fspath)).is_relative_to(REPO / "tests" / "workflow")
        fixtures = set(getattr(item, "fixturenames", ()))
        group = (
            "matrix-run"
            if "matrix_run" in fixtures
            else "tiny-run"
            if "tiny_run" in fixtures
            else "workflow"
            if workflow
            else "units"
        )
        item.add_marker(pytest.mark.xdist_group(group))
        functions = [getattr(item, "function", None)]
        for name in getattr(item, "fixturenames", ()):
            functions += [definition.func for definition in item._fixtureinfo.name2fixturedefs.get(name, ())]
        if any(function is not None and _starts_a_process(function) for function in functions):
            item.add_marker(pytest.mark.spawns)


# ---------------------------------------------------------------- the SLURM run, in the background


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the SLURM test is among the tests to run and a cluster answers: move it last and start its
    run now, so that its queueing and start-up waits overlap the other tests (tests/workflow/test_slurm.py)."""
    from .workflow import test_slurm

    slurm_items = [item for item in session.items if item.module is test_slurm]
    if not slurm_items or test_slurm.cluster_problem() is not None:
        return
    if hasattr(session.config, "workerinput"):
        # under pytest-xdist each worker collects every test, but only one runs this one: the test starts
        # its own run (the other worker's tests overlap it)
        return
    session.items[:] = [item for item in session.items if item.module is not test_slurm] + slurm_items
    workdir = session.config._tmp_path_factory.mktemp("slurm_background") / "slurm"
    test_slurm.BACKGROUND["run"] = test_slurm.start_background_run(workdir)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from .workflow import test_slurm

    test_slurm.stop_background_run()
