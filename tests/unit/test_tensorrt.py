"""TensorRT: engine building and the pipelined runtime.

Here (no GPU, no TensorRT): the pure functions, the environment check, the CLI's one-line error, and the
build and the pipeline against fake ``tensorrt`` and ``cudart`` modules whose streams run lazily (queued
work runs only when an event it precedes is waited for), so a slot reused too early or an output read
before its copy shows up as a wrong prediction. On a machine with an NVIDIA GPU and
envs/requirements-gpu.txt, real engines are built and compared with ONNX Runtime on the CPU; elsewhere
those tests are reported as skipped, "NOT RUN".
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deeplabv3_pipeline.backends.tensorrt import engine as engines
from deeplabv3_pipeline.backends.tensorrt.engine import (
    BuildLog,
    EngineSettings,
    OnnxFacts,
    TensorInfo,
    build_engine,
    check_model_precision,
    cuda_value,
    cuda_version_text,
    dtype_name,
    engine_evidence,
    numpy_dtype,
    plan_build,
    severity_name,
    zero_point_problem,
)
from deeplabv3_pipeline.backends.tensorrt.runner import TensorRTBackend, host_view, image_io
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import file_sha256, read_bin
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import fill, record_path

from ..conftest import run_script

PROBLEMS = engines.environment_problems()
GPU = pytest.mark.skipif(
    bool(PROBLEMS), reason="NOT RUN: needs an NVIDIA GPU and envs/requirements-gpu.txt: " + "; ".join(PROBLEMS)
)
H, W = 4, 6
ENGINE = b"fake serialized engine"
MIB = 1 << 20
ENGINE_WEIGHTS = 5 * MIB // 2  # what a fake engine holds on the device


# --- fake TensorRT and CUDA runtime --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """An enum member as pybind11 gives them: a name and an int."""

    name: str
    value: int

    def __int__(self) -> int:
        return self.value


def members(**values: int) -> SimpleNamespace:
    return SimpleNamespace(**{name: Member(name, value) for name, value in values.items()})


class FakeCudart:
    """cuda-python's ``(status, *values)`` calls over host memory; stream work is queued and runs, in
    order, only up to the event waited for (or all of it on a stream synchronize)."""

    def __init__(self) -> None:
        self.device: dict[int, Any] = {}
        self.host: dict[int, Any] = {}
        self.queue: list[tuple[str, Any]] = []
        self.streams: list[int] = []
        self.events: list[int] = []
        self.destroyed: list[int] = []
        self._next = 1000
        self.total = 16 << 30
        self.cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
        self.cudaStreamNonBlocking = 1

    def _handle(self) -> int:
        self._next += 1
        return self._next

    def _allocate(self, table: dict, size: int) -> tuple[int, int]:
        buffer = (ctypes.c_ubyte * size)()
        table[ctypes.addressof(buffer)] = buffer
        return 0, ctypes.addressof(buffer)

    def run_until(self, event: int | None) -> None:
        marks = [i for i, (kind, what) in enumerate(self.queue) if kind == "event" and what == event]
        stop = len(self.queue) if event is None else (marks[-1] + 1 if marks else 0)
        work, self.queue = self.queue[:stop], self.queue[stop:]
        for kind, what in work:
            if kind == "work":
                what()

    def cudaSetDevice(self, device: int) -> tuple[int]:
        return (0,)

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return 0, 1

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, Any]:
        return 0, SimpleNamespace(name=b"Fake GPU\0\0\0", major=9, minor=0, totalGlobalMem=self.total)

    def cudaDriverGetVersion(self) -> tuple[int, int]:
        return 0, 13000

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:
        return 0, 12090

    def cudaMemGetInfo(self) -> tuple[int, int, int]:
        used = sum(ctypes.sizeof(buffer) for buffer in self.device.values())
        return 0, self.total - used, self.total

    def cudaMalloc(self, size: int) -> tuple[int, int]:
        return self._allocate(self.device, size)

    def cudaMallocHost(self, size: int) -> tuple[int, int]:
        return self._allocate(self.host, size)

    def cudaFree(self, pointer: int) -> tuple[int]:
        del self.device[pointer]
        return (0,)

    def cudaFreeHost(self, pointer: int) -> tuple[int]:
        del self.host[pointer]
        return (0,)

    def cudaMemcpyAsync(self, dst: int, src: int, size: int, kind: int, stream: int) -> tuple[int]:
        self.queue.append(("work", lambda: ctypes.memmove(dst, src, size)))
        return (0,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[int, int]:
        self.streams.append(self._handle())
        return 0, self.streams[-1]

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:
        self.run_until(None)
        return (0,)

    def cudaStreamWaitEvent(self, stream: int, event: int, flags: int) -> tuple[int]:
        return (0,)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:
        self.destroyed.append(stream)
        return (0,)

    def cudaEventCreate(self) -> tuple[int, int]:
        self.events.append(self._handle())
        return 0, self.events[-1]

    def cudaEventRecord(self, event: int, stream: int) -> tuple[int]:
        self.queue.append(("event", event))
        return (0,)

    def cudaEventSynchronize(self, event: int) -> tuple[int]:
        self.run_until(event)
        return (0,)

    def cudaEventElapsedTime(self, start: int, end: int) -> tuple[int, float]:
        return 0, 1.25

    def cudaEventDestroy(self, event: int) -> tuple[int]:
        self.destroyed.append(event)
        return (0,)


class FakeContext:
    """Computes class ids = argmax over the 3 channels, reading the addresses bound at enqueue time."""

    def __init__(self, cudart: FakeCudart, output_dtype: str) -> None:
        self.cudart = cudart
        self.output_dtype = output_dtype
        self.addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, pointer: int) -> bool:
        self.addresses[name] = pointer
        return True

    def execute_async_v3(self, stream: int) -> bool:
        source, target = self.addresses["input"], self.addresses["output"]
        dtype = np.dtype(engines.NUMPY_DTYPES[self.output_dtype])

        def compute() -> None:
            image = host_view(source, (1, 3, H, W), np.dtype(np.float32))
            host_view(target, (1, 1, H, W), dtype)[...] = image.argmax(axis=1)[:, None]

        self.cudart.queue.append(("work", compute))
        return True


class FakeEngine:
    def __init__(self, trt: Any, output_dtype: str) -> None:
        self.trt = trt
        self.output_dtype = output_dtype
        self.num_io_tensors = 2
        self.device_memory_size_v2 = 3 * MIB
        # a deserialized engine holds its weights on the device until it is destroyed, as TensorRT's does
        self.weights = trt.cudart.cudaMalloc(ENGINE_WEIGHTS)[1]

    def __del__(self) -> None:
        self.trt.cudart.cudaFree(self.weights)

    def get_tensor_name(self, index: int) -> str:
        return ("input", "output")[index]

    def get_tensor_mode(self, name: str) -> Member:
        return self.trt.TensorIOMode.INPUT if name == "input" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (1, 3, H, W) if name == "input" else (1, 1, H, W)

    def get_tensor_dtype(self, name: str) -> Member:
        return Member("FLOAT" if name == "input" else self.output_dtype, 0)

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self.trt.cudart, self.output_dtype)


class FakeConfig:
    def __init__(self, trt: Any) -> None:
        self.flags = {"TF32"} & set(vars(trt.BuilderFlag))  # TF32 is on by default, as in TensorRT
        self.pool: dict[str, int] = {}
        self.builder_optimization_level = 3

    def set_flag(self, flag: Member) -> None:
        self.flags.add(flag.name)

    def clear_flag(self, flag: Member) -> None:
        self.flags.discard(flag.name)

    def get_flag(self, flag: Member) -> bool:
        return flag.name in self.flags

    def set_memory_pool_limit(self, pool: Member, size: int) -> None:
        self.pool[pool.name] = size


def fake_trt(cudart: FakeCudart, *, weak: bool, version: str = "11.4.0.106", output_dtype: str = "INT32") -> Any:
    """A TensorRT 10-like (``weak``: FP16/INT8 flags) or 11-like (strongly typed only) module."""
    trt = SimpleNamespace(__version__=version, cudart=cudart, built=[], parse_errors=[])
    trt.BuilderFlag = members(TF32=5, **({"FP16": 0, "INT8": 1} if weak else {}))
    trt.NetworkDefinitionCreationFlag = members(STRONGLY_TYPED=1, **({"EXPLICIT_BATCH": 0} if weak else {}))
    trt.MemoryPoolType = members(WORKSPACE=0)
    trt.TensorIOMode = members(INPUT=1, OUTPUT=2)

    class ILogger:
        def __init__(self) -> None:
            pass

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def create_network(self, flags: int) -> Any:
            return SimpleNamespace(flags=flags)

        def create_builder_config(self) -> FakeConfig:
            return FakeConfig(trt)

        def build_serialized_network(self, network: Any, config: FakeConfig) -> bytes:
            self.logger.log(Member("WARNING", 2), "fake warning")
            self.logger.log(Member("INFO", 3), "fake info")
            trt.built.append((network.flags, set(config.flags), dict(config.pool), config.builder_optimization_level))
            return ENGINE

    class OnnxParser:
        def __init__(self, network: Any, logger: Any) -> None:
            self.errors = list(trt.parse_errors)

        def parse_from_file(self, path: str) -> bool:
            return not self.errors

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> Any:
            node, name, op, desc = self.errors[index]
            return SimpleNamespace(
                node=lambda: node, node_name=lambda: name, node_operator=lambda: op, desc=lambda: desc
            )

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            if data != ENGINE:
                self.logger.log(Member("ERROR", 1), "serialization version mismatch")
                return None
            return FakeEngine(trt, output_dtype)

    trt.ILogger, trt.Builder, trt.OnnxParser, trt.Runtime = ILogger, Builder, OnnxParser, Runtime
    return trt


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a TensorRT 11-like fake; ``fakes.use(trt)`` swaps in another."""
    cudart = FakeCudart()
    state = SimpleNamespace(cudart=cudart, trt=fake_trt(cudart, weak=False))
    monkeypatch.setattr(engines, "environment_problems", lambda: [])
    monkeypatch.setattr(engines, "import_tensorrt", lambda: state.trt)
    monkeypatch.setattr(engines, "import_cudart", lambda: cudart)
    state.use = lambda trt: setattr(state, "trt", trt)
    return state


# --- tiny ONNX models ----------------------------------------------------------------------------------


def save_model(path: Path, nodes: list, initializers: list | None = None) -> Path:
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("output", TensorProto.INT64, [1, 1, H, W])],
        initializer=initializers or [],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def argmax(source: str = "input") -> Any:
    return helper.make_node("ArgMax", [source], ["output"], axis=1, keepdims=1)


@pytest.fixture
def fp32_onnx(tmp_path: Path) -> Path:
    return save_model(tmp_path / "fp32.onnx", [argmax()])


@pytest.fixture
def fp16_onnx(tmp_path: Path) -> Path:
    nodes = [
        helper.make_node("Cast", ["input"], ["half"], to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["half"], ["back"], to=TensorProto.FLOAT),
        argmax("back"),
    ]
    return save_model(tmp_path / "fp16.onnx", nodes)


def qdq_onnx(path: Path, zero_point: np.ndarray) -> Path:
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["q"], name="q0"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="dq0"),
        argmax("dq"),
    ]
    initializers = [
        onnx.numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
        onnx.numpy_helper.from_array(zero_point, "zero"),
    ]
    return save_model(path, nodes, initializers)


# --- pure functions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "flags"), [("fp32", ()), ("fp16", ("FP16",)), ("int8", ("INT8",))], ids=["fp32", "fp16", "int8"]
)
def test_tensorrt_10_builds_weakly_typed_with_precision_flags_and_tf32_cleared(precision, flags):
    plan = plan_build(fake_trt(FakeCudart(), weak=True), EngineSettings(precision))
    assert plan.network_mode == "weakly typed" and plan.network_flags == ()
    assert plan.set_flags == flags and plan.clear_flags == ("TF32",)
    assert not plan.typed_model


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_11_builds_strongly_typed_with_no_precision_flag(precision):
    plan = plan_build(fake_trt(FakeCudart(), weak=False), EngineSettings(precision))
    assert plan.network_mode == "strongly typed" and plan.network_flags == ("STRONGLY_TYPED",)
    assert plan.set_flags == () and plan.clear_flags == ("TF32",) and plan.typed_model


def test_tf32_stays_on_only_when_asked_for():
    plan = plan_build(fake_trt(FakeCudart(), weak=True), EngineSettings("fp32", tf32=True))
    assert plan.clear_flags == ()


def test_engine_settings_are_checked():
    with pytest.raises(UserError, match="precision 'bf16'"):
        EngineSettings("bf16")
    with pytest.raises(UserError, match="optimization level"):
        EngineSettings("fp32", builder_optimization_level=9)


def test_dtypes_map_by_name():
    assert numpy_dtype(Member("INT32", 3)) == np.int32
    assert numpy_dtype(Member("INT64", 8)) == np.int64
    assert numpy_dtype("DataType.FLOAT") == np.float32
    assert dtype_name("DataType.HALF") == "HALF"
    with pytest.raises(UserError, match="FP8"):
        numpy_dtype(Member("FP8", 11))


def test_cuda_results_and_versions():
    assert cuda_value((0, 5), "cudaMalloc") == 5
    assert cuda_value((0, 1, 2), "cudaMemGetInfo") == (1, 2)
    assert cuda_value((0,), "cudaFree") is None
    with pytest.raises(UserError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        cuda_value((Member("cudaErrorMemoryAllocation", 2), None), "cudaMalloc")
    assert cuda_version_text(12080) == "12.8" and cuda_version_text(13000) == "13.0"


def test_build_log_keeps_warnings_and_counts_info():
    log = BuildLog()
    for severity, message in [("WARNING", "w"), ("INFO", "i"), ("INFO", "j"), ("ERROR", "e"), ("VERBOSE", "v")]:
        log.add(severity, message)
    assert log.messages == ["[WARNING] w", "[ERROR] e"] and log.errors() == ["[ERROR] e"]
    assert (log.info_lines, log.verbose_lines) == (2, 1)
    assert severity_name(Member("WARNING", 2)) == "WARNING" and severity_name("Severity.INFO") == "INFO"


def test_evidence_line_comes_from_the_record():
    record = {
        "tensorrt_version": "10.16.1.11",
        "network_mode": "weakly typed",
        "builder_flags": {"FP16": True, "INT8": False, "TF32": False},
        "gpu": {"name": "NVIDIA H200", "compute_capability": "9.0"},
        "source_onnx": {"qdq_nodes": 0, "fp16_tensors": 0},
    }
    line = engine_evidence(record, "10.16.1.11", "NVIDIA H200")
    assert line.startswith("TensorRT 10.16.1.11 engine built weakly typed with flags FP16 on, INT8 off, TF32 off")
    assert "on NVIDIA H200 (compute 9.0)" in line and line.endswith("run by TensorRT 10.16.1.11 on NVIDIA H200")


def test_zero_points_must_be_symmetric_int8():
    assert zero_point_problem("q", np.zeros(3, np.int8)) is None
    assert "uint8" in zero_point_problem("q", np.array(128, np.uint8))
    assert "not 0" in zero_point_problem("q", np.array([0, 3], np.int8))


def test_model_precision_must_be_what_the_engine_computes(tmp_path):
    weak = plan_build(fake_trt(FakeCudart(), weak=True), EngineSettings("fp16"))
    strong = plan_build(fake_trt(FakeCudart(), weak=False), EngineSettings("fp16"))
    model, fp32, fp16, qdq = tmp_path / "m.onnx", OnnxFacts(0, 0), OnnxFacts(0, 4), OnnxFacts(6, 0)
    check_model_precision("fp16", fp32, weak, model, "10.16")  # the FP16 flag makes fp16 of an fp32 ONNX
    check_model_precision("fp16", fp16, strong, model, "11.4")
    check_model_precision("int8", qdq, strong, model, "11.4")
    with pytest.raises(UserError, match=r"fp16 engine needs an fp16 ONNX model and .*m.onnx has no fp16"):
        check_model_precision("fp16", fp32, strong, model, "11.4")
    with pytest.raises(UserError, match="int8 needs the Q/DQ model made by rule quantize_tensorrt"):
        check_model_precision("int8", fp32, weak, model, "10.16")
    with pytest.raises(UserError, match="--precision int8"):
        check_model_precision("fp32", qdq, strong, model, "11.4")
    with pytest.raises(UserError, match="fp16 tensors"):
        check_model_precision("fp32", fp16, weak, model, "10.16")
    with pytest.raises(UserError, match="symmetric int8"):
        check_model_precision("int8", OnnxFacts(2, 0, ("q: zero point is uint8, not int8",)), weak, model, "10")


def test_onnx_facts_count_qdq_fp16_and_bad_zero_points(tmp_path, fp32_onnx, fp16_onnx):
    assert engines.onnx_facts(fp32_onnx) == OnnxFacts(0, 0)
    assert engines.onnx_facts(fp16_onnx).fp16_tensors == 1
    assert engines.onnx_facts(qdq_onnx(tmp_path / "s.onnx", np.array(0, np.int8))) == OnnxFacts(2, 0)
    facts = engines.onnx_facts(qdq_onnx(tmp_path / "u.onnx", np.array(128, np.uint8)))
    assert facts.qdq_nodes == 2 and len(facts.zero_point_problems) == 2
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(UserError, match=r"bad.onnx is not a readable ONNX"):
        engines.onnx_facts(tmp_path / "bad.onnx")


def test_image_io_wants_one_float_image_and_class_ids():
    image = TensorInfo("input", True, (1, 3, H, W), "FLOAT")
    assert image_io([image, TensorInfo("output", False, (1, 1, H, W), "INT64")], Path("e"))[1].dtype == "INT64"
    with pytest.raises(UserError, match="input input is HALF"):
        image_io(
            [TensorInfo("input", True, (1, 3, H, W), "HALF"), TensorInfo("o", False, (1, 1, H, W), "INT32")], Path("e")
        )
    with pytest.raises(UserError, match="expected class ids"):
        image_io([image, TensorInfo("logits", False, (1, 19, H, W), "FLOAT")], Path("e"))


def test_the_record_the_rule_declares_is_the_one_the_runner_reads():
    # a model name with a dot: only the engine's suffix gives way to .json
    engine = fill(artifacts.BUILD_ENGINE.output, model="r50.v2", precision="fp16")
    assert artifacts.companion_files(artifacts.BUILD_ENGINE.format(model="r50.v2", precision="fp16")) == [
        "results/models/r50.v2/r50.v2_bs1_fp16.json"
    ]
    assert record_path(Path(engine)) == Path("results/models/r50.v2/r50.v2_bs1_fp16.json")


# --- without TensorRT ----------------------------------------------------------------------------------


def test_environment_names_what_is_missing():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert any("tensorrt" in problem and "requirements-gpu.txt" in problem for problem in PROBLEMS), PROBLEMS
    else:
        pytest.skip("tensorrt is installed here: the missing-package sentence cannot be checked")


def test_cli_without_tensorrt_is_one_error_line(tmp_path, fp32_onnx):
    if not PROBLEMS:
        pytest.skip("this machine can build engines: the error case cannot happen")
    result = run_script("build_engine.py", fp32_onnx, tmp_path / "m.engine", check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "requirements-gpu.txt" in lines[0]
    assert not (tmp_path / "m.engine").exists()


def test_backend_without_tensorrt_is_a_user_error(tmp_path):
    if not PROBLEMS:
        pytest.skip("this machine runs TensorRT: the error case cannot happen")
    with pytest.raises(UserError, match=r"requirements-gpu.txt"):
        TensorRTBackend(tmp_path / "m.engine")


# --- build and pipeline on the fakes -------------------------------------------------------------------


def test_build_on_tensorrt_11_is_strongly_typed_fp32(fakes, fp32_onnx, tmp_path):
    engine = tmp_path / "out" / "m.engine"
    record = build_engine(fp32_onnx, engine, EngineSettings("fp32", workspace_gib=2, builder_optimization_level=4))
    assert engine.read_bytes() == ENGINE and record["engine_bytes"] == len(ENGINE)
    assert record["network_mode"] == "strongly typed" and record["network_flags"] == ["STRONGLY_TYPED"]
    assert record["builder_flags"] == {"TF32": False}
    assert record["settings"] == {
        "precision": "fp32",
        "workspace_gib": 2,
        "builder_optimization_level": 4,
        "tf32": False,
    }
    network_flags, flags, pool, level = fakes.trt.built[0]
    assert network_flags == 1 << 1 and flags == set() and pool == {"WORKSPACE": 2 << 30} and level == 4
    assert record["gpu"] == {
        "device": 0,
        "name": "Fake GPU",
        "compute_capability": "9.0",
        "memory_total_mb": 16384.0,
        "cuda_driver": "13.0",
        "cuda_runtime": "12.9",
    }
    assert record["inputs"] == [{"name": "input", "shape": [1, 3, H, W], "dtype": "FLOAT"}]
    assert record["outputs"] == [{"name": "output", "shape": [1, 1, H, W], "dtype": "INT32"}]
    assert record["source_onnx"] == {
        "path": str(fp32_onnx),
        "sha256": file_sha256(fp32_onnx),
        "qdq_nodes": 0,
        "fp16_tensors": 0,
    }
    assert record["builder_log"] == {"messages": ["[WARNING] fake warning"], "info_lines": 1, "verbose_lines": 0}
    assert record["engine_device_memory_mb"] == 3.0
    json.dumps(record)  # the CLI writes it as JSON


def test_build_on_tensorrt_10_sets_fp16(fakes, fp32_onnx, tmp_path):
    fakes.use(fake_trt(fakes.cudart, weak=True, version="10.16.1.11"))
    record = build_engine(fp32_onnx, tmp_path / "m.engine", EngineSettings("fp16"))
    assert record["network_mode"] == "weakly typed" and record["network_flags"] == []
    assert record["builder_flags"] == {"FP16": True, "INT8": False, "TF32": False}
    assert fakes.trt.built[0][0] == 0


def test_fp16_on_tensorrt_11_needs_an_fp16_onnx(fakes, fp32_onnx, fp16_onnx, tmp_path):
    with pytest.raises(UserError, match="needs an fp16 ONNX model"):
        build_engine(fp32_onnx, tmp_path / "a.engine", EngineSettings("fp16"))
    assert not (tmp_path / "a.engine").exists()
    record = build_engine(fp16_onnx, tmp_path / "b.engine", EngineSettings("fp16"))
    assert record["source_onnx"]["fp16_tensors"] == 1


def test_int8_needs_the_symmetric_qdq_model(fakes, fp32_onnx, tmp_path):
    with pytest.raises(UserError, match="quantize_tensorrt"):
        build_engine(fp32_onnx, tmp_path / "a.engine", EngineSettings("int8"))
    with pytest.raises(UserError, match="symmetric int8"):
        build_engine(
            qdq_onnx(tmp_path / "u.onnx", np.array(128, np.uint8)), tmp_path / "b.engine", EngineSettings("int8")
        )
    record = build_engine(
        qdq_onnx(tmp_path / "s.onnx", np.array(0, np.int8)), tmp_path / "c.engine", EngineSettings("int8")
    )
    assert record["source_onnx"]["qdq_nodes"] == 2


def test_parser_errors_name_the_file_and_nodes(fakes, fp32_onnx, tmp_path):
    fakes.trt.parse_errors = [(3, "/decode/Resize", "Resize", "unsupported mode"), (-1, "", "", "bad graph")]
    with pytest.raises(UserError) as caught:
        build_engine(fp32_onnx, tmp_path / "m.engine", EngineSettings())
    message = str(caught.value)
    assert str(fp32_onnx) in message and "node 3 /decode/Resize Resize: unsupported mode" in message
    assert "model: bad graph" in message


def write_engine(folder: Path, fakes: Any, precision: str = "fp32") -> Path:
    """A fake engine with the record build_engine gives for it."""
    onnx_path = save_model(folder / "m.onnx", [argmax()])
    engine = folder / "m.engine"
    record = build_engine(onnx_path, engine, EngineSettings(precision))
    record_path(engine).write_text(json.dumps(record))
    return engine


def write_bins(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        paths.append(folder / f"frame{index}.bin")
        rng.standard_normal((1, 3, H, W), dtype=np.float32).tofile(paths[-1])
    return paths


@pytest.mark.parametrize("output_dtype", ["INT32", "INT64"])
def test_pipeline_gives_each_image_its_own_prediction(fakes, tmp_path, output_dtype):
    fakes.use(fake_trt(fakes.cudart, weak=False, output_dtype=output_dtype))
    engine = write_engine(tmp_path, fakes)
    bins = write_bins(tmp_path / "bins", 5)
    with TensorRTBackend(engine, precision="fp32") as backend:
        assert backend.input_shape == (H, W) and backend.inference_precision == "fp32"
        assert backend.precision_evidence.startswith(
            "TensorRT 11.4.0.106 engine built strongly typed with flags TF32 off"
        )
        run = backend.infer_files(bins, tmp_path / "out", "bin", warmup=2)
        single = backend.run(read_bin(bins[3], np.float32, (1, 3, H, W)))
    for path in bins:
        expected = read_bin(path, np.float32, (1, 3, H, W)).argmax(axis=1)[:, None]
        assert run.files[path.name] == f"{path.stem}_0.bin"
        np.testing.assert_array_equal(np.fromfile(tmp_path / "out" / run.files[path.name], np.int64), expected.ravel())
    np.testing.assert_array_equal(single, read_bin(bins[3], np.float32, (1, 3, H, W)).argmax(axis=1)[:, None])
    assert single.dtype == np.int64
    assert run.compute_ms == {path.name: 1.25 for path in bins} and run.wall_s > 0
    assert run.extra["gpu"]["name"] == "Fake GPU" and run.extra["gpu"]["engine_device_memory_mb"] == 3.0
    # what opening took on the device: the engine's weights (its I/O buffers are a few hundred bytes)
    assert run.extra["gpu"]["memory_used_mb"] == ENGINE_WEIGHTS / MIB
    assert run.extra["h2d_ms"]["mean"] == 1.25
    assert run.extra["d2h_ms"]["percentile(99%)"] == 1.25
    # Everything allocated was freed, every stream and event destroyed.
    assert not fakes.cudart.device and not fakes.cudart.host
    assert sorted(fakes.cudart.destroyed) == sorted(fakes.cudart.streams + fakes.cudart.events)
    with pytest.raises(UserError, match="was closed"):
        backend.run(read_bin(bins[0], np.float32, (1, 3, H, W)))


def test_backend_needs_engine_and_report(fakes, tmp_path):
    with pytest.raises(UserError, match=r"does not exist: build it with scripts/build_engine.py"):
        TensorRTBackend(tmp_path / "none.engine")
    engine = write_engine(tmp_path, fakes)
    record_path(engine).unlink()
    with pytest.raises(UserError, match=r"build record of .*m.engine, does not exist: rebuild"):
        TensorRTBackend(engine)


def test_backend_reports_the_engine_precision_not_the_request(fakes, tmp_path):
    fakes.use(fake_trt(fakes.cudart, weak=True))
    engine = write_engine(tmp_path, fakes, precision="fp16")
    with TensorRTBackend(engine, precision="fp32") as backend:
        assert backend.inference_precision == "fp16" and backend.requested_precision == "fp32"
        assert "weakly typed with flags FP16 on" in backend.precision_evidence


def test_engine_of_another_tensorrt_must_be_rebuilt(fakes, tmp_path):
    engine = write_engine(tmp_path, fakes)
    fakes.use(fake_trt(fakes.cudart, weak=False, version="11.5.0.1"))
    with pytest.raises(UserError, match=r"built by TensorRT 11.4.0.106 on Fake GPU .* this is TensorRT 11.5.0.1"):
        TensorRTBackend(engine)
    engine.write_bytes(b"x" * len(ENGINE))  # same size, unreadable
    fakes.use(fake_trt(fakes.cudart, weak=False))
    with pytest.raises(UserError, match=r"cannot load engine .*serialization version mismatch.*rebuild"):
        TensorRTBackend(engine)
    assert not fakes.cudart.device


# --- on an NVIDIA GPU ----------------------------------------------------------------------------------


def onnxruntime_ids(model: Path, bins: list[Path], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return {path.name: session.run(None, {name: read_bin(path, np.float32, shape)})[0] for path in bins}


@GPU
@pytest.mark.parametrize(("precision", "minimum"), [("fp32", 0.999), ("fp16", 0.99)])
def test_engine_agrees_with_onnxruntime_cpu(precision, minimum, onnx_models, prep_dir, tmp_path):
    source = onnx_models[1]
    if precision == "fp16":  # as the workflow does: TensorRT 11 computes in the model's types
        source = tmp_path / "deeplabv3_sim_bs1_fp16.onnx"
        run_script("convert_fp16.py", onnx_models[1], source)
    engine = tmp_path / f"deeplabv3_{precision}.engine"
    run_script("build_engine.py", source, engine, "--precision", precision, "--workspace-gib", 2)
    record = json.loads(record_path(engine).read_text())
    assert record["settings"]["precision"] == precision and record["engine_bytes"] == engine.stat().st_size
    bins = sorted(prep_dir.glob("*.bin"))
    with TensorRTBackend(engine, precision=precision) as backend:
        assert backend.inference_precision == precision
        run = backend.infer_files(bins, tmp_path / "out", "bin", warmup=1)
        shape = (1, 3, *backend.input_shape)
    expected = onnxruntime_ids(onnx_models[1], bins, shape)
    assert set(run.compute_ms) == {path.name for path in bins} and all(ms > 0 for ms in run.compute_ms.values())
    assert run.extra["gpu"]["memory_used_mb"] > 0 and run.extra["h2d_ms"]["mean"] > 0
    for path in bins:
        got = np.fromfile(tmp_path / "out" / run.files[path.name], np.int64)
        agreement = float(np.mean(got == expected[path.name].ravel()))
        assert agreement >= minimum, f"{path.name}: {agreement:.4f}"


@GPU
def test_fp16_from_an_fp32_onnx_on_tensorrt_11_is_a_clear_error(onnx_models, tmp_path):
    if not plan_build(engines.import_tensorrt(), EngineSettings("fp16")).typed_model:
        pytest.skip("this TensorRT builds fp16 with the FP16 flag: the error case cannot happen")
    result = run_script("build_engine.py", onnx_models[1], tmp_path / "m.engine", "--precision", "fp16", check=False)
    assert result.returncode == 2 and "needs an fp16 ONNX model" in result.stderr


def test_the_workflows_tensorrt_qdq_model_is_one_the_builder_takes(onnx_models, prep_dir, int8_model, tmp_path):
    """rule quantize_tensorrt's flags on the real (tiny) model: symmetric int8 activations and weights,
    float biases; ONNX Runtime's default (uint8 activations, int32 biases) is refused with the reason."""
    symmetric = tmp_path / "deeplabv3_sim_bs1_int8_sym.onnx"
    flags = ("--activation-type", "int8", "--symmetric-activations", "--float-bias")
    common = ("--calibration-data", prep_dir, "--calibration-images", 2, "--check-images", 0)
    run_script("quantize_onnx.py", onnx_models[1], symmetric, *flags, *common)
    facts = engines.onnx_facts(symmetric)
    assert facts.qdq_nodes > 0 and facts.zero_point_problems == ()
    settings = json.loads(symmetric.with_suffix(".json").read_text())["settings"]
    assert settings["activation_symmetric"] and not settings["quantize_bias"] and settings["activation_type"] == "int8"
    problems = engines.onnx_facts(int8_model[0]).zero_point_problems  # ONNX Runtime's defaults
    assert any("not int8" in problem for problem in problems)
