"""Precision means precision: each backend computes what was asked (or says it does not) and reports it.

OpenVINO's CPU plugin defaults to bf16 on CPUs with native BF16, so on such a machine the fp32 tests
here fail unless the backend pins f32. The CPU facts are injected where the test is about the logic,
so both kinds of machine (AVX2 only; AVX-512 with avx512_bf16) are covered wherever the tests run.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from deeplabv3_pipeline import cpu
from deeplabv3_pipeline.backends import INFERENCE_PRECISIONS, PRECISIONS, check_precision, open_backend
from deeplabv3_pipeline.backends.onnxruntime.runner import onnxruntime_precision, pinned_providers, quantized_ops
from deeplabv3_pipeline.backends.openvino.runner import compute_precisions, openvino_precision
from deeplabv3_pipeline.errors import UserError

from ..conftest import MODEL_CONFIG, REPO, SHAPE

# An AVX2 desktop/server CPU of the kind without any AVX-512, and an AVX-512 one with VNNI and BF16.
AVX2_FLAGS = frozenset(["fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"])
AVX512_BF16_FLAGS = AVX2_FLAGS | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
AMX_FLAGS = AVX512_BF16_FLAGS | {"amx_tile", "amx_bf16", "amx_int8"}
NO_BF16 = f"this CPU has no avx512_bf16/amx_bf16: bf16 cannot run natively here ({cpu.cpu_model_name()})"
needs_bf16 = pytest.mark.skipif(not cpu.has_bf16(), reason=NO_BF16)


def demo_images(prep_dir: Path) -> list[np.ndarray]:
    return [np.fromfile(path, np.float32).reshape(1, 3, *SHAPE) for path in sorted(prep_dir.glob("*.bin"))]


def predictions(backend, images: list[np.ndarray]) -> np.ndarray:
    return np.stack([backend.run(image) for image in images])


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    assert first.shape == second.shape and first.dtype == second.dtype == np.int64
    return float(np.mean(first == second))


def pytorch_backend(checkpoint: Path, precision: str = "fp32"):
    return open_backend("pytorch", checkpoint, model_config=MODEL_CONFIG, input_shape=SHAPE, precision=precision)


@pytest.fixture(scope="module")
def images(prep_dir) -> list[np.ndarray]:
    return demo_images(prep_dir)


@pytest.fixture(scope="module")
def onnxruntime_fp32(onnx_models, images) -> tuple[object, np.ndarray]:
    backend = open_backend("onnxruntime", onnx_models[1])
    return backend, predictions(backend, images)


@pytest.fixture(scope="module")
def openvino_fp32(onnx_models, images) -> tuple[object, np.ndarray]:
    backend = open_backend("openvino", onnx_models[1], precision="fp32")
    return backend, predictions(backend, images)


@pytest.fixture
def avx2_cpu(monkeypatch) -> None:
    """Pretend to be a CPU without native BF16, for everything that reads the flags itself."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS)


# ---------------------------------------------------------------- cpu.py, with injected flags


def test_cpuinfo_fields_are_parsed():
    text = "processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n"
    assert cpu.cpuinfo_field("model name", text) == "AMD EPYC 9654"
    assert cpu.cpuinfo_field("flags", text).split() == ["fpu", "avx2", "avx512_bf16"]
    assert cpu.cpuinfo_field("microcode", text) is None


def test_unreadable_cpuinfo_means_no_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "missing")
    assert cpu.cpu_flags() == frozenset() and not cpu.has_bf16()
    assert cpu.cpu_model_name()  # platform's name or the machine type, never empty


def test_this_machines_flags_are_read():
    if platform.machine() not in ("x86_64", "AMD64") or not cpu.CPUINFO.is_file():
        pytest.skip(f"not an x86 Linux machine ({platform.machine()}): no /proc/cpuinfo flags to read")
    flags = cpu.cpu_flags()
    assert "sse2" in flags  # every x86-64 CPU has it: the flags line was found and split
    # lscpu reads the CPU's features on its own: where it runs, it must agree on the BF16 ones
    lscpu = shutil.which("lscpu")
    if lscpu:
        listed = subprocess.run([lscpu], capture_output=True, text=True, check=True).stdout
        line = next((row for row in listed.splitlines() if row.startswith("Flags:")), "")
        assert set(cpu.bf16_features()) == {"avx512_bf16", "amx_bf16"} & set(line.split()[1:])
    assert cpu.has_bf16() == bool(cpu.bf16_features())


@pytest.mark.parametrize(
    ("flags", "features"),
    [(AVX2_FLAGS, []), (AVX512_BF16_FLAGS, ["avx512_bf16"]), (AMX_FLAGS, ["avx512_bf16", "amx_bf16"])],
    ids=["avx2", "avx512-bf16", "amx"],
)
def test_bf16_features_per_cpu_kind(flags, features):
    assert cpu.bf16_features(flags) == features
    assert cpu.has_bf16(flags) == bool(features)


def test_require_bf16_passes_on_a_bf16_cpu():
    cpu.require_bf16("precision bf16 (openvino)", AVX512_BF16_FLAGS)
    cpu.require_bf16("precision bf16 (openvino)", {"amx_bf16"})


def test_require_bf16_names_the_missing_feature_on_an_avx2_cpu():
    with pytest.raises(UserError) as raised:
        cpu.require_bf16("precision bf16 (openvino)", AVX2_FLAGS, instead=("fp32", "int8"))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("precision bf16 (openvino) needs a CPU with native BF16")
    assert "avx512_bf16 or amx_bf16" in message and cpu.cpu_model_name() in message
    assert message.endswith("use precision fp32 or int8")


# ---------------------------------------------------------------- the precision table


def test_precision_table():
    assert {"onnxruntime", "openvino", "pytorch", "tensorrt", "ascend"} <= set(PRECISIONS)
    assert PRECISIONS["openvino"] == ("fp32", "bf16", "int8") and PRECISIONS["ascend"] == ("fp16", "fp32")
    assert all(set(allowed) <= set(INFERENCE_PRECISIONS) for allowed in PRECISIONS.values())
    for name, allowed in PRECISIONS.items():
        for precision in allowed:
            check_precision(name, precision)


def test_the_readme_precision_table_is_the_registry():
    """One row per registered backend, a "-" exactly where the backend lacks the precision."""
    readme = (REPO / "README.md").read_text()
    header = "| backend | `fp32` | `bf16` | `fp16` | `int8` |"
    lines = readme[readme.index(header) :].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = {
            precision
            for precision, cell in zip(("fp32", "bf16", "fp16", "int8"), cells[1:], strict=True)
            if cell != "-"
        }
    assert rows == {name: set(allowed) for name, allowed in PRECISIONS.items()}


@pytest.mark.parametrize(
    ("backend", "precision", "choices"),
    [
        ("onnxruntime", "bf16", "fp32, int8"),
        ("pytorch", "int8", "fp32, fp16, bf16"),
        ("tensorrt", "bf16", "fp32, fp16, int8"),
    ],
)
def test_open_backend_refuses_a_precision_the_backend_lacks(tmp_path, backend, precision, choices):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"never loaded: the precision is checked first")
    with pytest.raises(UserError, match=f"backend {backend} has no precision {precision}: it runs "):
        open_backend(backend, model, model_config=MODEL_CONFIG, input_shape=SHAPE, precision=precision)
    with pytest.raises(UserError, match=choices):
        check_precision(backend, precision)


def test_bf16_is_a_clear_error_without_native_bf16(avx2_cpu, onnx_models, checkpoint):
    """The non-BF16 path on every machine: injected AVX2 flags; refused before any model is loaded."""
    with pytest.raises(UserError, match=r"^precision bf16 \(openvino\) needs .*avx512_bf16 or amx_bf16.*fp32 or int8$"):
        open_backend("openvino", onnx_models[1], precision="bf16")
    with pytest.raises(
        UserError, match=r"^precision bf16 \(pytorch\) needs .*avx512_bf16 or amx_bf16.*use precision fp32$"
    ):
        pytorch_backend(checkpoint, "bf16")


# ---------------------------------------------------------------- what each runtime reports (pure parts)


def test_quantized_ops_are_the_int8_computing_ones():
    ops = ["Conv", "QuantizeLinear", "DequantizeLinear", "QuantizeLinear", "QLinearConv", "Relu"]
    assert quantized_ops(ops) == {"QLinearConv": 1, "QuantizeLinear": 2}
    assert quantized_ops(["DequantizeLinear", "Conv"]) == {}  # weight-only: computes float


def test_onnxruntime_precision_of_sessions():
    assert onnxruntime_precision({}) == "fp32"
    assert onnxruntime_precision({"QuantizeLinear": 82}) == "int8"


def test_cuda_provider_runs_without_tf32():
    """TF32 (ONNX Runtime's CUDA default) would round an "fp32" run's matmul inputs to 10-bit mantissas."""
    assert pinned_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        ("CUDAExecutionProvider", {"use_tf32": "0"}),
        "CPUExecutionProvider",
    ]
    assert pinned_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_openvino_precision_from_the_compiled_model():
    assert openvino_precision("f32", 0, {"f32": 62}) == "fp32"
    assert openvino_precision("bf16", 0, {"bf16": 62}) == "bf16"
    assert openvino_precision("f32", 82, {"u8": 61, "f32": 1}) == "int8"
    assert openvino_precision("f32", 82, None) == "int8"  # execution graph unreadable: the model decides
    assert openvino_precision("f32", 82, {"f32": 62}) == "fp32"  # FakeQuantize ops the runtime did not run int8
    layers = [("Convolution", "u8"), ("Convolution", "u8"), ("Convolution", "f32"), ("Reorder", "f32"), ("Const", "i8")]
    assert compute_precisions(layers) == {"u8": 2, "f32": 1}


# ---------------------------------------------------------------- the runtimes on the random test model


def test_openvino_fp32_is_fp32_and_agrees_with_onnxruntime(openvino_fp32, onnxruntime_fp32):
    openvino, openvino_ids = openvino_fp32
    onnxruntime, onnxruntime_ids = onnxruntime_fp32
    assert openvino.inference_precision == "fp32", openvino.precision_evidence
    assert "INFERENCE_PRECISION_HINT=f32" in openvino.precision_evidence
    assert onnxruntime.inference_precision == "fp32", onnxruntime.precision_evidence
    assert "CPUExecutionProvider" in onnxruntime.precision_evidence
    assert agreement(openvino_ids, onnxruntime_ids) > 0.999


@needs_bf16
def test_openvino_fp32_agrees_with_pytorch_fp32_on_a_bf16_cpu(openvino_fp32, checkpoint, images):
    """Where OpenVINO's default would be bf16: pinned to f32 it matches eager PyTorch to rounding."""
    eager = pytorch_backend(checkpoint)
    assert eager.inference_precision == "fp32", eager.precision_evidence
    assert agreement(openvino_fp32[1], predictions(eager, images)) > 0.999


@needs_bf16
def test_openvino_bf16_reports_bf16(onnx_models, images, openvino_fp32):
    backend = open_backend("openvino", onnx_models[1], precision="bf16")
    assert backend.inference_precision == "bf16", backend.precision_evidence
    assert "INFERENCE_PRECISION_HINT=bf16" in backend.precision_evidence
    ids = predictions(backend, images)
    assert ids.shape == (len(images), 1, 1, *SHAPE)
    assert agreement(ids, openvino_fp32[1]) > 0.9  # the same model, rounded: close, not necessarily equal


@needs_bf16
def test_pytorch_bf16_runs_under_autocast(checkpoint, images):
    backend = pytorch_backend(checkpoint, "bf16")
    assert backend.inference_precision == "bf16" and "autocast" in backend.precision_evidence
    conv = next(module for module in backend.model.modules() if isinstance(module, torch.nn.Conv2d))
    seen: list[torch.dtype] = []
    hook = conv.register_forward_hook(lambda _module, _inputs, output: seen.append(output.dtype))
    try:
        ids = backend.run(images[0])
    finally:
        hook.remove()
    assert seen == [torch.bfloat16]  # the convolutions really computed in bf16
    assert ids.dtype == np.int64 and ids.shape == (1, 1, *SHAPE)


# ---------------------------------------------------------------- int8 models, and requests a model cannot give


def test_int8_model_reports_int8(int8_model, images, onnxruntime_fp32):
    onnxruntime = open_backend("onnxruntime", int8_model[0], precision="int8")
    assert onnxruntime.inference_precision == "int8" and "QuantizeLinear" in onnxruntime.precision_evidence
    openvino = open_backend("openvino", int8_model[0], precision="int8")
    assert openvino.inference_precision == "int8", openvino.precision_evidence
    # Float ops of the int8 model (classifier, resize) pinned to f32, even where the default would be bf16.
    assert (
        "INFERENCE_PRECISION_HINT=f32" in openvino.precision_evidence and "FakeQuantize" in openvino.precision_evidence
    )
    ids = predictions(onnxruntime, images)
    assert ids.shape == onnxruntime_fp32[1].shape and ids.dtype == np.int64


def test_callers_without_a_precision_get_what_the_model_is(int8_model):
    """agreement.agreement_check opens int8 models with no precision: they run, and say int8."""
    assert open_backend("onnxruntime", int8_model[0]).inference_precision == "int8"
    assert open_backend("openvino", int8_model[0]).inference_precision == "int8"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_asked_of_an_fp32_model_reports_fp32(onnx_models, backend):
    """No quantized ops: the reported precision differs from the request, for the caller to refuse."""
    assert open_backend(backend, onnx_models[1], precision="int8").inference_precision == "fp32"


@needs_bf16
def test_bf16_asked_of_an_int8_model_reports_int8(int8_model):
    assert open_backend("openvino", int8_model[0], precision="bf16").inference_precision == "int8"
