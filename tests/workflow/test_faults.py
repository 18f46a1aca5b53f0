"""Faults during a run: a killed inference job resumes without redoing finished shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import REPO
from ..helpers import TINY, copy_run, infer_dir, merged, snakemake, write_config

pytestmark = pytest.mark.slow


def test_sigkill_mid_shard_resumes_without_redoing_finished_shards(tiny_run, tmp_path):
    # From the tiny run: its model files (which do not depend on the frames) are reused; its predictions
    # are not (the shards below must be this run's own).
    tmp_path = copy_run(tiny_run, tmp_path / "run")
    shutil.rmtree(tmp_path / "results" / "infer")
    config = merged(TINY, {"demo": {"images": 9}, "shards": 3, "warmup": 0})
    write_config(tmp_path, config)
    # Everything before inference first, so that the run below reaches the infer jobs at once.
    snakemake(
        tmp_path,
        "--until",
        "simplify_onnx",
        "preprocess_shard0",
        "preprocess_shard1",
        "preprocess_shard2",
        check=True,
    )
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "results/result.json"]
    runner = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    infer = tmp_path / infer_dir()
    deadline = time.monotonic() + 300
    killed_mid_shard = False
    try:
        while time.monotonic() < deadline and runner.poll() is None:
            done = sorted(p.name for p in (infer / "shards").glob("*.json")) if (infer / "shards").is_dir() else []
            if done and len(list(infer.glob("*_0.bin"))) > 3:  # shard 0 finished, the next one writing
                os.killpg(runner.pid, signal.SIGKILL)
                killed_mid_shard = True
                break
            time.sleep(0.005)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    assert killed_mid_shard, "the run ended before it could be killed"
    finished = {p: p.stat().st_mtime_ns for p in (infer / "shards").glob("*.json")}
    assert finished, "at least one shard finished before the kill"
    snakemake(tmp_path, "--unlock")
    resumed = snakemake(tmp_path, "--rerun-incomplete", "results/result.json")
    for summary, mtime in finished.items():
        assert summary.stat().st_mtime_ns == mtime, f"{summary.name} was redone"
        assert f"rule infer_deeplabv3_onnxruntime_fp32_shard{summary.stem}:" not in resumed.stdout
    assert not list(tmp_path.rglob(".*.partial*")), "a partial file survived"
    result = json.loads((tmp_path / "results" / "result.json").read_text())
    assert result["num_images"] == 9
