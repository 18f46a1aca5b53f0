"""Shared fixtures: a tiny synthetic Cityscapes tree, a random checkpoint in the real format, its ONNX."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from deeplabv3_pipeline.errors import LOG_FORMAT, run_cli

REPO = Path(__file__).resolve().parent.parent
SHAPE = (64, 128)  # small enough for seconds per stage, large enough for the 1/8 feature map
# The unit fixtures' model: the tiny scenario's DeepLabV3 R18-D8 (.test/tiny), the guide's model family (the
# same head, export and code paths) at a quarter of R50-D8's compute. The guide's R50-D8 itself is exported
# where its own graph is the subject (``guide_models``: the Winograd sites of its wide convolutions).
MODEL_CONFIG = yaml.safe_load((REPO / ".test" / "tiny" / "config.yaml").read_text())["model"]["config"]


def _script_module(name: str) -> ModuleType:
    """``scripts/<name>`` imported as a module (once per process), as ``python scripts/<name>`` runs it."""
    module_name = f"_stage_cli_{Path(name).stem}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / "scripts" / name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # not half a module for the next test
            raise
    return sys.modules[module_name]


@contextlib.contextmanager
def _process_state_restored() -> Iterator[None]:
    """What a stage CLI may change of the process, put back as it was: sys.argv[0], the root logger's
    handlers and level (run_cli's logging.basicConfig), torch's thread count (a backend's --threads)."""
    root = logging.getLogger()
    program, handlers, level = sys.argv[0], root.handlers[:], root.level
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        yield
    finally:
        sys.argv[0] = program
        root.handlers[:] = handlers
        root.setLevel(level)
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)


def run_script(name: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/<name>`` as its command line does (``run_cli(main)`` on the arguments as strings), in
    this process: what it prints and logs and its exit code, as a finished process would report them (an
    unexpected exception: its traceback on stderr and exit code 1). Not captured: warnings (pytest records
    them) and what child processes or native libraries write to the file descriptors themselves.

    In-process because a stage CLI's own work takes a fraction of what a new Python pays to import torch,
    onnx and mmseg (~2 s each time); each script still runs as a program in the workflow's jobs and in
    tests/cli/test_scripts.py's start-up test (``run_program``)."""
    module = _script_module(name)
    argv = list(map(str, args))
    stdout, stderr = io.StringIO(), io.StringIO()
    with _process_state_restored():
        # the log lines run_cli's logging.basicConfig would send to the process's stderr (it adds no handler
        # where the root logger has one)
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.argv[0] = str(REPO / "scripts" / name)  # argparse's prog, as in `python scripts/<name>`
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                returncode = run_cli(module.main, argv)
            except SystemExit as exit:  # argparse: --help, a usage error
                returncode = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            except Exception:  # a bug: what Python prints and exits with
                traceback.print_exc()
                returncode = 1
    completed = subprocess.CompletedProcess([name, *argv], returncode, stdout.getvalue(), stderr.getvalue())
    if check and completed.returncode != 0:
        raise AssertionError(f"{name} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return completed


def run_program(name: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python scripts/<name>`` in a new process, as a user would (the entry point itself)."""
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

    return made_once(tmp_path_factory, "cityscapes", lambda root: make_demo_dataset(root, "val", 4, SHAPE, seed=1))


def model_pair(folder: Path) -> tuple[Path, Path]:
    """(exported, simplified) ONNX in ``folder``: what :func:`export_models` writes there."""
    return folder / "deeplabv3.onnx", folder / "deeplabv3_sim_bs1.onnx"


def export_models(config: str, checkpoint: Path, folder: Path) -> tuple[Path, Path]:
    """(exported, simplified) ONNX of ``checkpoint`` at SHAPE, made by the CLIs (the export verified)."""
    exported, simplified = model_pair(folder)
    run_script(
        "export_onnx.py", config, "--checkpoint", checkpoint, "--output-file", exported, "--shape", *SHAPE, "--verify"
    )
    run_script("simplify_onnx.py", exported, simplified, "--input-shape", f"1,3,{SHAPE[0]},{SHAPE[1]}")
    return exported, simplified


RANDOM_NAME = "random.pth"


def random_checkpoint(config: str, folder: Path) -> Path:
    """A random checkpoint of ``config`` in the real format (seeded: every session the same weights)."""
    from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint

    return make_random_checkpoint(config, folder / RANDOM_NAME, seed=3)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random checkpoint of MODEL_CONFIG."""
    return made_once(tmp_path_factory, "ckpt", lambda folder: random_checkpoint(MODEL_CONFIG, folder)) / RANDOM_NAME


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> tuple[Path, Path]:
    """(exported, simplified) ONNX of the random checkpoint at SHAPE, made by the CLIs."""
    folder = made_once(tmp_path_factory, "models", lambda folder: export_models(MODEL_CONFIG, checkpoint, folder))
    return model_pair(folder)


GUIDE_CONFIG = "deeplabv3_r50-d8_512x1024_40k_cityscapes"  # the guide's name of mmseg's R50-D8 config


@pytest.fixture(scope="session")
def guide_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random checkpoint of the guide's R50-D8."""
    folder = made_once(tmp_path_factory, "guide_ckpt", lambda folder: random_checkpoint(GUIDE_CONFIG, folder))
    return folder / RANDOM_NAME


@pytest.fixture(scope="session")
def guide_models(tmp_path_factory: pytest.TempPathFactory, guide_checkpoint: Path) -> tuple[Path, Path]:
    """(exported, simplified) ONNX of the guide's R50-D8, exported by the guide's config name."""
    folder = made_once(
        tmp_path_factory, "guide_models", lambda folder: export_models(GUIDE_CONFIG, guide_checkpoint, folder)
    )
    return model_pair(folder)


@pytest.fixture(scope="session")
def prep_dir(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Path:
    return made_once(
        tmp_path_factory,
        "prep_dataset",
        lambda folder: run_script("preprocess.py", demo_root / "leftImg8bit" / "val", folder, "--input-shape", *SHAPE),
    )


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory: pytest.TempPathFactory, onnx_models, prep_dir) -> tuple[Path, dict]:
    """The random checkpoint's simplified ONNX quantized by the CLI on 2 of the 4 demo bins."""
    name = "deeplabv3_sim_bs1_int8.onnx"

    def make(folder: Path) -> None:
        run_script(
            "quantize_onnx.py", onnx_models[1], folder / name, "--calibration-data", prep_dir,
            "--calibration-images", 2, "--check-images", 1,
        )  # fmt: skip

    output = made_once(tmp_path_factory, "int8", make) / name
    return output, json.loads(output.with_suffix(".json").read_text())


def made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], object], *, created: bool = True
) -> Path:
    """The folder ``name`` made by ``make`` once per test session, also under pytest-xdist: its workers share
    it (the first that needs it makes it, under a lock; the other waits, as its core is the maker's second
    one). A folder the tests only read (the models, the bins; the runs below: tests copy them before they
    run Snakemake there). ``created``: the folder exists, empty, when ``make`` is called."""
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent  # the session's folder, above each worker's own
    folder, made = base / name, base / f"{name}.made"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed attempt left
            if created:
                folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run of the default target's result on the tiny demo (read-only: tests copy it)."""
    from .helpers import scenario, snakemake, write_config

    def make(workdir: Path) -> None:
        write_config(workdir, scenario("tiny"))
        run = snakemake(workdir, "results/result.json")
        assert "SYNTHETIC" in run.stdout  # the demo says loudly what it is

    return made_once(tmp_path_factory, "tiny_run", make, created=False)


@pytest.fixture(scope="session")
def matrix_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run, then `snakemake results/matrix.json` of 2 models x 3 variants (read-only: tests copy it)."""
    from .helpers import copy_run, scenario, snakemake, write_config

    def make(workdir: Path) -> None:
        copy_run(tiny_run, workdir)
        write_config(workdir, scenario("matrix"))
        run = snakemake(workdir, "results/matrix.json")
        assert "evaluate_deeplabv3_onnxruntime_fp32" not in run.stdout  # the tiny run's cell is reused

    return made_once(tmp_path_factory, "matrix_run", make, created=False)


# ---------------------------------------------------------------- the inner loop: make test-fast

# What starts a process in a test or a fixture: the helpers that run Snakemake or a program, or subprocess.
SPAWNING = re.compile(r"\b(run_program|snakemake|planned_rules|Popen|subprocess\.\w+)\s*\(")
# What runs a stage CLI's whole work in-process (an export, a quantization: seconds each).
STAGE_CLI = re.compile(r"\b(run_script|run_infer|clean_figures|export_models)\s*\(")


@functools.cache
def _source_matches(function: object, pattern: re.Pattern) -> bool:
    try:
        return bool(pattern.search(inspect.getsource(function)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker hook reads the order
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``spawns`` every test that starts a process and ``stage_cli`` every test that runs a stage CLI's
    whole work in-process, in its own code or in a fixture it uses (read from their source), so that
    `make test-fast` (``-m "not slow and not spawns and not stage_cli"``) runs the quick in-process tests
    alone, and a new test that starts a process leaves the inner loop by itself.

    And order the tests for `make test`'s two pytest-xdist workers (``--dist load``: a free worker takes the
    next tests): the workflow tests first (Snakemake runs, the longest), then the unit and CLI tests that
    start a process or run a stage CLI, then the quick in-process ones, which fill in the end, and the
    SLURM test last (its run started with the session: by then it has ended).
    Each worker makes the session fixtures its tests need once (the tiny run, the matrix run, the unit
    models): docs/performance.md."""

    for item in items:
        functions = [getattr(item, "function", None)]
        for name in getattr(item, "fixturenames", ()):
            functions += [definition.func for definition in item._fixtureinfo.name2fixturedefs.get(name, ())]
        for marker, pattern in ((pytest.mark.spawns, SPAWNING), (pytest.mark.stage_cli, STAGE_CLI)):
            if any(function is not None and _source_matches(function, pattern) for function in functions):
                item.add_marker(marker)

    def order(item: pytest.Item) -> tuple[bool, bool, bool]:
        # of the unit and CLI tests, those that start a process or run a stage CLI's work (seconds each)
        # before the in-process ones (milliseconds): the quick ones fill in the end of both workers
        quick = not any(item.get_closest_marker(name) for name in ("spawns", "stage_cli"))
        return item.path == SLURM_TEST, not item.path.is_relative_to(REPO / "tests" / "workflow"), quick

    items.sort(key=order)


# ---------------------------------------------------------------- the SLURM run, in the background


SLURM_TEST = REPO / "tests" / "workflow" / "test_slurm.py"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without pytest-xdist: when the SLURM test is among the tests to run, start its run now, so that its
    queueing and start-up waits overlap the other tests (the test runs last: ``pytest_collection_modifyitems``)."""
    config = session.config
    if hasattr(config, "workerinput") or config.pluginmanager.hasplugin("dsession"):
        return  # pytest-xdist: its controller started the run (pytest_sessionstart)
    if any(item.path == SLURM_TEST for item in session.items):
        start_slurm_run(config)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which starts the workers
def pytest_sessionstart(session: pytest.Session) -> None:
    """pytest-xdist's controller collects no test, so it starts the SLURM run where the command line selects
    the SLURM test (the whole suite, tests/workflow, its file; a -m expression that keeps it; no -k), and
    tells the workers where it runs (their environment: test_slurm.background_run)."""
    config = session.config
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("dsession") and selects(config):
        start_slurm_run(config)


def start_slurm_run(config: pytest.Config) -> None:
    """Start the SLURM test's run in the background where a cluster answers (tests/workflow/test_slurm.py),
    not for a collection only."""
    from .workflow import test_slurm

    if config.option.collectonly or test_slurm.cluster_problem() is not None:
        return
    workdir = config._tmp_path_factory.mktemp("slurm_background") / "slurm"
    test_slurm.BACKGROUND["run"] = run = test_slurm.start_background_run(workdir)
    test_slurm.announce_background_run(run)


def selects(config: pytest.Config, test_file: Path = SLURM_TEST, markers: frozenset = frozenset({"slow"})) -> bool:
    """Whether the command line runs the tests of ``test_file`` (marked ``markers``, and ``spawns``): a path
    it names holds the file, neither --deselect nor --ignore takes it out, its -m expression keeps them,
    and it has no -k (which is not guessed)."""
    from _pytest.mark.expression import Expression

    here = config.invocation_params.dir

    def holds(paths: object) -> bool:
        return any(test_file.is_relative_to((here / str(path).split("::")[0]).resolve()) for path in paths or ())

    if config.option.keyword or holds(config.option.deselect) or holds(config.option.ignore):
        return False
    if config.option.markexpr:
        marked = markers | {"spawns"}
        if not Expression.compile(config.option.markexpr).evaluate(lambda name, **_: name in marked):
            return False
    return holds(config.args)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from .workflow import test_slurm

    test_slurm.stop_background_run()
