"""The workflow end to end through SLURM (profiles/slurm, snakemake-executor-plugin-slurm), sharded.

Needs a running SLURM cluster whose nodes share this file system, e.g. the single-node one of
`bash cluster/slurm/start.sh` (run it first; this test never starts a cluster). Skipped, with
the reason, where `sbatch` is missing or `sinfo` gets no answer.

The SLURM run is mostly waiting (queueing, status checks, each job's start-up): it starts in the
background with the session (tests/conftest.py: once the tests are collected, or under pytest-xdist when
its controller starts; :func:`start_background_run`) and its test runs last, so the other tests run
meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from ..conftest import REPO
from ..helpers import DEMO_DATA, PSPNET, TINY, key, merged, snakemake, write_config

pytestmark = pytest.mark.slow
PROFILE = REPO / "profiles" / "slurm"
# Two shards of the 3 tiny images and a 2-model x 2-variant matrix: every cell shards like the configured
# one. Each inference job runs the tiny config's 2 threads, as the local run it is compared with does: its
# figures are then equal to the last pixel (a thread count may change the order of ONNX Runtime's fp32
# sums, which flips pixels whose two best logits tie). The one-node test cluster has 2 cores, so the two
# shards of a cell run one after the other there.
MATRIX = {"models": [PSPNET], "variants": ["onnxruntime-fp32"], "reference": "pytorch-fp32"}
CONFIG = merged(TINY, {"shards": 2, "matrix": MATRIX})
TARGETS = ("results/result.json", "results/matrix.json")
# A hung Snakemake (e.g. status checks that never succeed) must not hang the suite: the run may take this
# long from its start (with the session), and the test waits at least WAIT_S for it.
TIMEOUT_S = int(os.environ.get("DEEPLABV3_SLURM_TEST_TIMEOUT", "900"))
WAIT_S = 120
# Rules whose SLURM job comment must show up (grouped rules share one job: "rule_model_...").
SLURM_RULES = (
    "demo_dataset",
    "labels",
    "demo_checkpoint",
    "export_onnx",
    "simplify_onnx",
    "preprocess_shard0",
    "preprocess_shard1",
    "infer_deeplabv3_onnxruntime_fp32_shard0",
    "infer_deeplabv3_onnxruntime_fp32_shard1",
    "infer_pspnet_pytorch_fp32_shard0",
    "infer_pspnet_onnxruntime_fp32_shard1",
    "metrics_pspnet_onnxruntime_fp32",
    "metrics_deeplabv3_pytorch_fp32",
    "matrix",
)
METRICS = ("aAcc", "mIoU", "mAcc", "per_class", "confusion_matrix", "per_image", "num_images")


def cluster_problem() -> str | None:
    """Why there is no usable SLURM cluster here, or None."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (no SLURM here; `bash cluster/slurm/start.sh` starts a local one)"
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"sinfo gave no answer ({error}); is the cluster up? `bash cluster/slurm/start.sh`"
    if sinfo.returncode != 0:
        return f"the SLURM cluster does not answer sinfo: {sinfo.stderr.strip()[:300]}"
    states = {state.rstrip("*~#!%$@^-") for state in sinfo.stdout.split()}
    if not states & {"idle", "mix", "alloc", "mixed", "allocated"}:
        return f"no SLURM node is up (sinfo states: {sorted(states) or 'none'})"
    return None


def slurm_jobs(run_id: str, since: str) -> list[dict[str, str]]:
    """The SLURM jobs named `run_id` (job id, state, comment), from sacct, else from squeue."""
    rows = []
    if shutil.which("sacct"):
        sacct = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-S", since, "--name", run_id, "--format=JobID,State,Comment"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = [line.split("|", 2) for line in sacct.stdout.splitlines() if line.strip()]
    if not rows or not any(comment for *_, comment in rows):  # no accounting or no stored comments
        squeue = subprocess.run(
            ["squeue", "-h", "-t", "all", "--name", run_id, "-o", "%i|%T|%k"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = [line.split("|", 2) for line in squeue.stdout.splitlines() if line.strip()]
    return [{"id": job_id, "state": state, "comment": comment} for job_id, state, comment in rows]


def stop_hung_run(workdir: Path, output: str) -> None:
    """After a timeout: cancel the run's SLURM jobs and remove Snakemake's lock."""
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    if run_id:
        subprocess.run(["scancel", "--name", run_id.group(1)], check=False, timeout=60)
    snakemake(workdir, "--unlock", check=False)


@dataclass
class SlurmRun:
    """A SLURM run in the background: its folder, its output and (once it ends) exit code files, and the
    process group of the wrapper that runs it (``RUNNER``)."""

    workdir: Path
    log: Path
    exit_code: Path
    pgid: int
    since: str  # for sacct -S
    started: float  # time.time(): the run may have been started by another process of the session

    def to_json(self) -> str:
        return json.dumps({key: str(value) for key, value in self.__dict__.items()})

    @classmethod
    def from_json(cls, text: str) -> SlurmRun:
        record = json.loads(text)
        paths = {key: Path(record[key]) for key in ("workdir", "log", "exit_code")}
        return cls(**paths, pgid=int(record["pgid"]), since=record["since"], started=float(record["started"]))


# Runs the command of argv[2:] and writes its exit code to argv[1] once it ends (whole: through a rename),
# so that whichever process of the test session waits for the run (a pytest-xdist worker; the run was
# started by the controller) can tell that it ended and how.
RUNNER = (
    "import os, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1] + '.part', 'w').write(str(code)); os.replace(sys.argv[1] + '.part', sys.argv[1])"
)
STOPPED = -9  # the exit code recorded for a run stopped after its timeout
# where pytest-xdist's controller tells its workers about the run it started (tests/conftest.py)
BACKGROUND_VARIABLE = "DEEPLABV3_TEST_SLURM_RUN"
BACKGROUND: dict[str, SlurmRun] = {}  # "run": the run this process started at the session's start, if any


def start_background_run(workdir: Path) -> SlurmRun:
    """Start the README's command, snakemake --workflow-profile profiles/slurm results/result.json (and the
    matrix), in ``workdir``; the test waits for it."""
    write_config(workdir, CONFIG)
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    log, exit_code = workdir.parent / "slurm_run.log", workdir.parent / "slurm_run.exit_code"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--workflow-profile", str(PROFILE), *TARGETS]
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(exit_code), *command],
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a hung run is stopped as a whole
        )
    return SlurmRun(workdir, log, exit_code, process.pid, since, time.time())


def announce_background_run(run: SlurmRun) -> None:
    """Tell the processes this one starts (pytest-xdist's workers) about ``run``."""
    record = run.workdir.parent / "slurm_run.json"
    record.write_text(run.to_json())
    os.environ[BACKGROUND_VARIABLE] = str(record)


def background_run() -> SlurmRun | None:
    """The run started at the session's start, by this process or by pytest-xdist's controller, if any."""
    run = BACKGROUND.pop("run", None)
    if run is None and os.environ.get(BACKGROUND_VARIABLE):
        run = SlurmRun.from_json(Path(os.environ.pop(BACKGROUND_VARIABLE)).read_text())
    return run


def wait_for(run: SlurmRun, timeout_s: float) -> tuple[int | None, str]:
    """The run's exit code (None: stopped after ``timeout_s``) and output."""
    deadline = time.time() + timeout_s
    while not run.exit_code.is_file() and time.time() < deadline:
        time.sleep(1)
    if not run.exit_code.is_file():
        stop_run(run)
        return None, run.log.read_text()
    code = int(run.exit_code.read_text())
    return (None if code == STOPPED else code), run.log.read_text()


def stop_run(run: SlurmRun) -> None:
    """Stop a run that is still going (Snakemake ignores SIGTERM while it waits on job states), its SLURM
    jobs, and Snakemake's lock, once (it records STOPPED as the run's exit code)."""
    if run.exit_code.is_file():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pgid, signal.SIGKILL)
    stop_hung_run(run.workdir, run.log.read_text())
    run.exit_code.write_text(str(STOPPED))


def stop_background_run() -> None:
    """At the session's end: a run its test never waited for (deselected, or the session stopped) is stopped."""
    run = BACKGROUND.pop("run", None)
    if run is not None:
        stop_run(run)


def test_sharded_run_through_slurm_matches_a_local_run(matrix_run, tmp_path):
    """The matrix on SLURM, sharded, against the local unsharded run of the same models and frames
    (matrix_run: the figures do not depend on the shards, tests/workflow/test_workflow.py)."""
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    try:  # pinned in requirements-dev.txt: with a cluster at hand, its absence is a failure
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not installed (pip install -r requirements-dev.txt)")

    run = background_run() or start_background_run(tmp_path / "slurm")
    on_slurm, local, since = run.workdir, matrix_run, run.since
    returncode, output = wait_for(run, max(WAIT_S, TIMEOUT_S - (time.time() - run.started)))
    if returncode is None:
        pytest.fail(f"the SLURM run took over {TIMEOUT_S} s:\n{output[-6000:]}")
    elapsed = time.time() - run.started
    assert returncode == 0, f"snakemake on SLURM failed:\n{output[-6000:]}"
    print(f"SLURM run: {elapsed:.0f} s from its start (in the background while the other tests ran)")

    # (a) The jobs ran as SLURM jobs: sacct (or squeue) knows them by the run's job name and
    # the rule names in their comments, and all completed.
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    assert run_id, output[-3000:]
    jobs = slurm_jobs(run_id.group(1), since)
    comments = " ".join(job["comment"] for job in jobs)
    for rule in SLURM_RULES:
        assert f"_{rule}" in comments, f"no SLURM job for rule {rule}: {jobs}"
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    assert "preprocess_shard1" in output and "infer_pspnet_onnxruntime_fp32_shard1" in output

    # (b) The same metrics as the local run of the same models and frames.
    on_cluster = json.loads((on_slurm / "results" / "result.json").read_text())
    reference = json.loads((local / "results" / "result.json").read_text())
    for metric in METRICS:
        assert on_cluster[metric] == reference[metric], metric
    assert on_cluster["num_images"] == 3
    summary = on_slurm / f"results/infer/{DEMO_DATA}/{key('pspnet')}/onnxruntime-fp32/summary.json"
    assert json.loads(summary.read_text())["shards"] == 2
    cluster_rows, local_rows = (
        {
            (row["model"], row["variant"]): row
            for row in json.loads((folder / "results" / "matrix.json").read_text())["rows"]
        }
        for folder in (on_slurm, local)
    )
    assert list(cluster_rows) == [
        (key(model), variant) for model in ("deeplabv3", "pspnet") for variant in ("pytorch-fp32", "onnxruntime-fp32")
    ]
    for cell, ours in cluster_rows.items():
        for column in ("miou", "aacc", "pixel_agreement", "worst_frame_agreement"):
            assert ours[column] == local_rows[cell][column], (cell, column)
