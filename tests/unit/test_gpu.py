"""ONNX Runtime's CUDA provider: run only where onnxruntime-gpu sees a GPU; reported as NOT RUN elsewhere.
(TensorRT engines: tests/unit/test_tensorrt.py and the tensorrt tests of tests/workflow/test_workflow.py.)"""

import json

import numpy as np
import onnxruntime as ort
import pytest

from ..conftest import run_infer

PROVIDERS = ort.get_available_providers()


def test_cuda_provider_matches_cpu(onnx_models, prep_dir, tmp_path):
    if "CUDAExecutionProvider" not in PROVIDERS:
        pytest.skip("NOT RUN: CUDAExecutionProvider unavailable (needs an NVIDIA GPU and envs/requirements-gpu.txt)")
    run_infer("onnxruntime", onnx_models[1], prep_dir, tmp_path / "cpu")
    providers = ["--providers", "CUDAExecutionProvider", "CPUExecutionProvider"]
    run_infer("onnxruntime", onnx_models[1], prep_dir, tmp_path / "gpu", *providers)
    summary = json.loads((tmp_path / "gpu" / "summary.json").read_text())
    assert summary["inference_precision"] == "fp32" and "CUDAExecutionProvider" in summary["precision_evidence"]
    cpu_predictions = sorted((tmp_path / "cpu").glob("*_0.bin"))
    assert cpu_predictions, "the CPU run wrote no predictions"
    for path in cpu_predictions:
        agreement = np.mean(np.fromfile(path, np.int64) == np.fromfile(tmp_path / "gpu" / path.name, np.int64))
        assert agreement > 0.999, path.name


def test_missing_gpu_provider_is_a_clear_error(onnx_models, prep_dir, tmp_path):
    if "CUDAExecutionProvider" in PROVIDERS:
        pytest.skip("this machine has the CUDA provider: the error case cannot happen")
    result = run_infer(
        "onnxruntime", onnx_models[1], prep_dir, tmp_path, "--providers", "CUDAExecutionProvider", check=False
    )
    assert result.returncode == 2
    assert "lacks CUDAExecutionProvider" in result.stderr and "envs/requirements-gpu.txt" in result.stderr
