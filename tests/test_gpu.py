"""NVIDIA backends: run only where onnxruntime-gpu sees a GPU; reported as skipped (not run) elsewhere."""

import numpy as np
import onnxruntime as ort
import pytest

from .conftest import run_infer

PROVIDERS = ort.get_available_providers()


@pytest.mark.parametrize(
    ("backend", "provider", "extra"),
    [
        ("onnxruntime", "CUDAExecutionProvider", ["--providers", "CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("tensorrt", "TensorrtExecutionProvider", ["--precision", "fp32"]),
        ("tensorrt", "TensorrtExecutionProvider", ["--precision", "fp16"]),
    ],
)
def test_gpu_backend_matches_cpu(backend, provider, extra, onnx_models, prep_dir, tmp_path):
    if provider not in PROVIDERS:
        pytest.skip(f"NOT RUN: {provider} unavailable here (needs an NVIDIA GPU and envs/requirements-gpu.txt)")
    run_infer("onnxruntime", onnx_models[1], prep_dir, tmp_path / "cpu")
    run_infer(backend, onnx_models[1], prep_dir, tmp_path / "gpu", *extra)
    for path in sorted((tmp_path / "cpu").glob("*_0.bin")):
        agreement = np.mean(np.fromfile(path, np.int64) == np.fromfile(tmp_path / "gpu" / path.name, np.int64))
        assert agreement > (0.99 if "fp16" in extra else 0.999), path.name


def test_missing_gpu_provider_is_a_clear_error(onnx_models, prep_dir, tmp_path):
    if "CUDAExecutionProvider" in PROVIDERS:
        pytest.skip("this machine has the CUDA provider: the error case cannot happen")
    result = run_infer(
        "onnxruntime", onnx_models[1], prep_dir, tmp_path, "--providers", "CUDAExecutionProvider", check=False
    )
    assert result.returncode == 2
    assert "lacks CUDAExecutionProvider" in result.stderr and "envs/requirements-gpu.txt" in result.stderr
