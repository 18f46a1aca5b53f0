"""The per-layer comparison in the workflow (config debug, target debug; rules/debug.smk), on a copy of the
tiny run: ONNX Runtime's int8 model compared with the PyTorch reference; the cells' own files untouched.
(The planned TensorRT and Ascend commands: tests/unit/test_layers.py, tests/unit/test_plan.py.)"""

from __future__ import annotations

import json

from ..helpers import TAG, copy_run, key, scenario, snakemake, write_config


def test_the_debug_target_compares_each_variant_with_its_reference_cell_and_changes_no_cell(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "run")
    result = workdir / "results/result.json"
    before = result.stat().st_mtime_ns
    write_config(workdir, scenario("debug"))
    run = snakemake(workdir, "debug")
    model, folder = key("deeplabv3"), workdir / f"results/debug/demo/val{TAG}/{key('deeplabv3')}"
    assert "rule infer" not in run.stdout and "rule evaluate" not in run.stdout  # no cell is run again
    assert result.stat().st_mtime_ns == before

    int8 = json.loads((folder / "onnxruntime-int8/layers.json").read_text())
    assert (
        int8["reference"]["backend"] == "pytorch"
        and int8["reference"]["model"] == "results/demo/checkpoints/deeplabv3.pth"
    )
    assert int8["model"]["model"] == f"results/models/{model}/{model}_sim_bs1_int8.onnx"
    assert int8["graph"] == f"results/models/{model}/{model}_sim_bs1.onnx" and len(int8["inputs"]) == 1
    assert len(int8["rows"]) > 20 and int8["rows"][0]["tensor"].startswith("/backbone/")
    assert (folder / "onnxruntime-int8/layers.csv").read_text().count("\n") == len(int8["rows"]) + 1
    assert (folder / "onnxruntime-int8/layers.png").stat().st_size > 10_000
