"""TensorRT engines: the environment check, the build from ONNX, and the build record beside the engine.

TensorRT and the CUDA runtime bindings are imported inside the functions that need them, so this module
(and the workflow that imports it) loads where neither is installed.

Precision, TensorRT 10 vs 11. TensorRT 10 builds *weakly typed* networks: an fp32 ONNX becomes an fp16
engine with ``BuilderFlag.FP16`` (TensorRT picks fp16 or fp32 per layer), and a Q/DQ ONNX an int8 one
with ``BuilderFlag.INT8`` (explicit quantization; without the flag a weakly typed Q/DQ network does not
build). TensorRT 11 removed FP16/INT8/BF16/FP8 and the precision-constraint flags: every network is
*strongly typed* and computes in the types of its ONNX tensors, so an fp32 ONNX gives an fp32 engine
whatever is asked, fp16 needs an fp16 ONNX (scripts/convert_fp16.py) and int8 a Q/DQ ONNX. Which API this
TensorRT has is read from the module (``hasattr``), not from its version number, and the record says
which mode was used. ``BuilderFlag.TF32`` exists in both, on by default: it lets fp32 convolutions
round their inputs to TF32 on Ampere and later, so an "fp32" engine clears it unless asked otherwise.

The record (``record_path``: the engine's name with ``.json``) records the settings, the
TensorRT, GPU and CUDA versions, the network mode and the builder flags as the config reads them back,
the engine's I/O tensors, the source ONNX and its sha256, and the builder's warnings: the runtime
backend reads its precision and evidence from it, and names it when an engine must be rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.io.binio import file_sha256, read_onnx, write_atomic

from ...errors import UserError

LOG = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r envs/requirements-gpu.txt on a machine with an NVIDIA driver"
PRECISIONS = ("fp32", "fp16", "int8")
# Builder flags whose state the record holds (those this TensorRT has).
RECORDED_FLAGS = ("FP16", "BF16", "INT8", "FP8", "TF32")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
ONNX_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
MIB = 1 << 20
# TensorRT data type names -> NumPy (the types an I/O tensor of this model can have).
NUMPY_DTYPES: dict[str, type] = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}
WARNING_SEVERITIES = ("INTERNAL_ERROR", "ERROR", "WARNING")
ERROR_SEVERITIES = ("INTERNAL_ERROR", "ERROR")


# --- imports and the environment -------------------------------------------------------------------


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as error:
        raise UserError(f"TensorRT's Python package (tensorrt) is not installed ({error}): {INSTALL_HINT}") from error
    return tensorrt


def import_cudart() -> Any:
    """The CUDA runtime bindings: ``cuda.bindings.runtime`` (cuda-python 12.6 and later, 13.x), else the
    older ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python before 12.6
        except ImportError as error:
            raise UserError(
                f"the CUDA runtime bindings (cuda-python) are not installed ({error}): {INSTALL_HINT}"
            ) from error
    return runtime


def environment_problems() -> list[str]:
    """What this machine lacks to build and run engines, one sentence each naming the fix; empty when
    nothing. Never raises: it is asked before any job runs, also where nothing NVIDIA is installed."""
    problems: list[str] = []
    for importer in (import_tensorrt, import_cudart):
        try:
            importer()
        except UserError as error:
            problems.append(str(error))
        except Exception as error:  # a package that is there but broken (a missing libnvinfer, say)
            problems.append(f"{importer.__name__.removeprefix('import_')} failed to import ({error}): {INSTALL_HINT}")
    try:
        problems += gpu_problems()
    except Exception as error:
        problems.append(f"cannot tell whether an NVIDIA GPU is visible ({error})")
    return problems


def gpu_problems() -> list[str]:
    """No GPU visible: asked of the CUDA runtime where its bindings import, else of the driver's files."""
    try:
        cudart = import_cudart()
    except UserError:
        if shutil.which("nvidia-smi") or Path("/dev/nvidiactl").exists():
            return []
        return ["no NVIDIA driver here (no nvidia-smi, no /dev/nvidiactl): run on a machine with an NVIDIA GPU"]
    result = cudart.cudaGetDeviceCount()
    code, count = cuda_code(result[0]), (result[1] if len(result) > 1 else 0)
    if code != 0:
        return [
            f"no NVIDIA GPU visible (cudaGetDeviceCount: {cuda_error_name(result[0])}): run on a machine with an "
            "NVIDIA GPU and a driver new enough for the installed CUDA (r535+ for CUDA 12 wheels, r580+ for CUDA 13)"
        ]
    if not count:
        return ["no NVIDIA GPU visible (cudaGetDeviceCount: 0): run on a machine with an NVIDIA GPU"]
    return []


# --- CUDA calls --------------------------------------------------------------------------------------


def cuda_code(error: Any) -> int:
    """A cuda-python status (an enum member, or a plain int in a fake) as an int; 0 is success."""
    return int(getattr(error, "value", error))


def cuda_error_name(error: Any) -> str:
    return str(getattr(error, "name", error))


def cuda_value(result: tuple, call: str) -> Any:
    """cuda-python returns ``(status, *values)``: the value (a tuple if several, None if none), or a
    :class:`UserError` naming the call and the status."""
    status, values = result[0], tuple(result[1:])
    if cuda_code(status) != 0:
        raise UserError(f"CUDA {call} failed: {cuda_error_name(status)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def cuda_version_text(version: int) -> str:
    """CUDA's integer versions: 12080 -> "12.8"."""
    return f"{version // 1000}.{version % 1000 // 10}"


def gpu_facts(cudart: Any, device: int) -> dict[str, Any]:
    """Name, compute capability and memory of ``device``, and the CUDA driver and runtime versions."""
    properties = cuda_value(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = properties.name
    if isinstance(name, bytes | bytearray):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    return {
        "device": device,
        "name": str(name).strip(),
        "compute_capability": f"{properties.major}.{properties.minor}",
        "memory_total_mb": round(int(properties.totalGlobalMem) / MIB, 1),
        "cuda_driver": cuda_version_text(cuda_value(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion")),
        "cuda_runtime": cuda_version_text(cuda_value(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")),
    }


# --- TensorRT's log ----------------------------------------------------------------------------------


def severity_name(severity: Any) -> str:
    """``trt.ILogger.Severity.WARNING`` (or its str, "Severity.WARNING") -> "WARNING"."""
    return str(getattr(severity, "name", severity)).rsplit(".", 1)[-1]


@dataclass
class BuildLog:
    """TensorRT's messages at WARNING and above, kept whole; INFO and VERBOSE lines only counted."""

    messages: list[str] = field(default_factory=list)
    info_lines: int = 0
    verbose_lines: int = 0

    def add(self, severity: str, message: str) -> None:
        if severity in WARNING_SEVERITIES:
            self.messages.append(f"[{severity}] {message}")
            (LOG.error if severity in ERROR_SEVERITIES else LOG.warning)("TensorRT: %s", message)
        elif severity == "INFO":
            self.info_lines += 1
        else:
            self.verbose_lines += 1

    def errors(self) -> list[str]:
        return [message for message in self.messages if message.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "info_lines": self.info_lines, "verbose_lines": self.verbose_lines}


def make_logger(trt: Any, log: BuildLog) -> Any:
    """A ``trt.ILogger`` feeding ``log``; it must outlive the builder or runtime given it."""

    class CollectingLogger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # TensorRT's docs: the base must be initialised explicitly

        def log(self, severity: Any, msg: str) -> None:
            with contextlib.suppress(Exception):  # log() is noexcept on the C++ side
                log.add(severity_name(severity), msg)

    return CollectingLogger()


# --- what to build -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSettings:
    """What an engine is built for. ``tf32``: let fp32 layers use TF32 (off, so fp32 is fp32)."""

    precision: str = "fp32"
    workspace_gib: int = 8
    builder_optimization_level: int = 3
    tf32: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserError(f"TensorRT precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.workspace_gib < 1:
            raise UserError(f"the TensorRT workspace must be at least 1 GiB, got {self.workspace_gib}")
        if not 0 <= self.builder_optimization_level <= 5:
            raise UserError(f"the builder optimization level is 0..5, got {self.builder_optimization_level}")


@dataclass(frozen=True)
class BuildPlan:
    """How this TensorRT builds a precision: the network mode, the network creation flags, the builder
    flags to set and to clear, and whether the precision must already be in the ONNX's types."""

    network_mode: str  # "weakly typed" | "strongly typed"
    network_flags: tuple[str, ...]
    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    typed_model: bool


def has_weak_typing(trt: Any) -> bool:
    """TensorRT 10 has the precision flags; TensorRT 11 removed them (strongly typed only)."""
    return hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "INT8")


def plan_build(trt: Any, settings: EngineSettings) -> BuildPlan:
    """The mode and flags for ``settings`` on the API ``trt`` has.

    Weakly typed (10.x): fp32 no precision flag, fp16 ``FP16``, int8 ``INT8`` (explicit quantization of
    the Q/DQ model; the rest fp32). Strongly typed (11.x): no precision flag exists, the ONNX's types are
    the precision; ``STRONGLY_TYPED`` is passed where the enum still has it (ignored, always on, in 11).
    TF32 is cleared unless ``settings.tf32``, in both modes.
    """
    clear = () if settings.tf32 or not hasattr(trt.BuilderFlag, "TF32") else ("TF32",)
    if has_weak_typing(trt):
        precision_flag = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8",)}[settings.precision]
        return BuildPlan("weakly typed", (), precision_flag, clear, typed_model=False)
    strongly = ("STRONGLY_TYPED",) if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") else ()
    return BuildPlan("strongly typed", strongly, (), clear, typed_model=True)


def network_creation_flags(trt: Any, names: Iterable[str]) -> int:
    flags = 0
    for name in names:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return flags


# --- what the ONNX model holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxFacts:
    """What decides an ONNX model's precision under TensorRT: its Q/DQ nodes, its fp16 tensors
    (initializers, Cast-to-fp16, typed inputs/outputs/value_info), and Q/DQ zero points TensorRT rejects."""

    qdq_nodes: int
    fp16_tensors: int
    zero_point_problems: tuple[str, ...] = ()


def onnx_int8() -> int:
    from onnx import TensorProto

    return TensorProto.INT8


def zero_point_problem(node: str, zero_point: np.ndarray) -> str | None:
    """TensorRT quantizes symmetrically to int8: a zero point must be int8 and 0."""
    if zero_point.dtype != np.int8:
        return f"{node}: zero point is {zero_point.dtype}, not int8"
    if np.any(zero_point != 0):
        return f"{node}: zero point {zero_point.ravel()[:4].tolist()} is not 0"
    return None


def graph_facts(graph: Any) -> OnnxFacts:
    """``OnnxFacts`` of an ``onnx.GraphProto`` (main graph only; this model has no subgraphs)."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    fp16 = sum(tensor.data_type == ONNX_FLOAT16 for tensor in graph.initializer)
    for info in (*graph.input, *graph.output, *graph.value_info):
        fp16 += info.type.tensor_type.elem_type == ONNX_FLOAT16
    qdq, problems = 0, []
    for node in graph.node:
        if node.op_type == "Cast":
            fp16 += any(attr.name == "to" and attr.i == ONNX_FLOAT16 for attr in node.attribute)
        if node.op_type not in QDQ_OPS:
            continue
        qdq += 1
        data = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if data is not None and data.data_type != onnx_int8():
            # e.g. ONNX Runtime's int32 Conv biases: TensorRT dequantizes int8 (and fp8/int4) only
            problems.append(f"DequantizeLinear {node.name or node.output[0]!r}: input is not int8")
            continue
        if len(node.input) >= 3 and node.input[2] in initializers:
            try:
                zero_point = numpy_helper.to_array(initializers[node.input[2]])
            except Exception:  # stored as external data, not loaded: TensorRT's parser will say
                continue
            problem = zero_point_problem(f"{node.op_type} {node.name or node.output[0]!r}", zero_point)
            if problem:
                problems.append(problem)
    return OnnxFacts(qdq, int(fp16), tuple(problems))


def onnx_facts(model: Path) -> OnnxFacts:
    return graph_facts(read_onnx(model, external_data=False).graph)


def check_model_precision(precision: str, facts: OnnxFacts, plan: BuildPlan, model: Path, version: str) -> None:
    """Stop when the engine would not compute ``precision``: a label must be true."""
    if precision == "int8":
        if not facts.qdq_nodes:
            raise UserError(
                f"{model} has no QuantizeLinear/DequantizeLinear nodes: int8 needs the Q/DQ model made by rule "
                "quantize_tensorrt"
            )
        if facts.zero_point_problems:
            shown = "; ".join(facts.zero_point_problems[:3])
            raise UserError(
                f"{model} has Q/DQ nodes TensorRT cannot run ({len(facts.zero_point_problems)}, e.g. {shown}): "
                "TensorRT needs symmetric int8 (zero point 0); use the model made by rule quantize_tensorrt"
            )
        return
    if facts.qdq_nodes:
        raise UserError(
            f"{model} has {facts.qdq_nodes} QuantizeLinear/DequantizeLinear nodes (an int8 model): build it with "
            f"--precision int8, or give the {precision} model"
        )
    if precision == "fp32" and facts.fp16_tensors:
        raise UserError(f"{model} has {facts.fp16_tensors} fp16 tensors: an fp32 engine needs the fp32 ONNX model")
    if precision == "fp16" and plan.typed_model and not facts.fp16_tensors:
        raise UserError(
            f"TensorRT {version} builds strongly typed networks only (BuilderFlag.FP16 was removed in 11.0), "
            f"so an fp16 engine needs an fp16 ONNX model and {model} has no fp16 tensors: build from "
            "scripts/convert_fp16.py's model (the workflow's convert_fp16 rule does), or install TensorRT 10.x"
        )


# --- engines -----------------------------------------------------------------------------------------


def dtype_name(trt_dtype: Any) -> str:
    """``trt.DataType.INT64`` (or its str, "DataType.INT64") -> "INT64"."""
    return str(getattr(trt_dtype, "name", trt_dtype)).rsplit(".", 1)[-1]


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    name = dtype_name(trt_dtype)
    if name not in NUMPY_DTYPES:
        raise UserError(f"TensorRT tensor type {name} has no NumPy type here ({', '.join(NUMPY_DTYPES)})")
    return np.dtype(NUMPY_DTYPES[name])


@dataclass(frozen=True)
class TensorInfo:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: str  # TensorRT's name: FLOAT, HALF, INT32, INT64 ...

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def engine_tensors(trt: Any, engine: Any) -> list[TensorInfo]:
    """The engine's I/O tensors in its order."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        tensors.append(
            TensorInfo(
                name,
                engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                tuple(int(size) for size in engine.get_tensor_shape(name)),
                dtype_name(engine.get_tensor_dtype(name)),
            )
        )
    return tensors


def engine_device_memory(engine: Any) -> int:
    """Activation memory an execution context needs: ``device_memory_size_v2`` (10.1+; the only one in 11)."""
    size = getattr(engine, "device_memory_size_v2", None)
    return int(size if size is not None else getattr(engine, "device_memory_size", 0))


def parser_errors(parser: Any) -> list[str]:
    """Every ONNX parser error with its node (index, name, operator) where the parser knows it."""
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = []
        with contextlib.suppress(Exception):
            if error.node() >= 0:
                where.append(f"node {error.node()}")
        for getter in ("node_name", "node_operator"):
            with contextlib.suppress(Exception):
                value = getattr(error, getter)()
                if value:
                    where.append(str(value))
        errors.append(f"{' '.join(where) or 'model'}: {error.desc()}")
    return errors


def read_flags(trt: Any, config: Any) -> dict[str, bool]:
    """The precision-related builder flags as the config reads them back (those this TensorRT has)."""
    return {
        name: bool(config.get_flag(getattr(trt.BuilderFlag, name)))
        for name in RECORDED_FLAGS
        if hasattr(trt.BuilderFlag, name)
    }


def build_engine(onnx_model: Path, engine_path: Path, settings: EngineSettings, *, device: int = 0) -> dict[str, Any]:
    """Build ``onnx_model`` into ``engine_path`` (written atomically) and return the build record.

    The record is returned, not written: the caller writes it beside the engine after the engine.
    """
    onnx_model, engine_path = Path(onnx_model), Path(engine_path)
    if not onnx_model.is_file():
        raise UserError(f"ONNX model {onnx_model} does not exist: run the workflow's export rules first")
    problems = environment_problems()
    if problems:
        raise UserError("cannot build TensorRT engines here: " + "; ".join(problems))
    trt, cudart = import_tensorrt(), import_cudart()
    plan = plan_build(trt, settings)
    facts = onnx_facts(onnx_model)
    check_model_precision(settings.precision, facts, plan, onnx_model, trt.__version__)
    cuda_value(cudart.cudaSetDevice(device), "cudaSetDevice")
    gpu = gpu_facts(cudart, device)

    log = BuildLog()
    logger = make_logger(trt, log)
    builder = trt.Builder(logger)
    network = builder.create_network(network_creation_flags(trt, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse_from_file(str(onnx_model))  # from the file: external weights resolve beside it
    errors = parser_errors(parser)
    if not parsed or errors:
        raise UserError(
            f"TensorRT {trt.__version__} cannot parse {onnx_model}: "
            + "; ".join(errors or log.errors() or ["no reason"])
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_gib << 30)
    config.builder_optimization_level = settings.builder_optimization_level
    for name in plan.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    flags = read_flags(trt, config)
    LOG.info("building %s (%s, %s, flags %s)", engine_path, settings.precision, plan.network_mode, flags)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise UserError(
            f"TensorRT {trt.__version__} could not build an engine from {onnx_model}: "
            + ("; ".join(log.errors()[-3:]) or "see its messages above")
        )
    data = bytes(serialized)
    del serialized, parser, network, config, builder  # free the builder's memory before loading the engine

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise UserError(f"TensorRT built {engine_path} but cannot load it: " + "; ".join(log.errors()[-3:]))
    tensors = engine_tensors(trt, engine)
    device_memory = engine_device_memory(engine)
    del engine, runtime
    write_atomic(engine_path, data)
    return {
        "engine": str(engine_path),
        "engine_bytes": len(data),
        "settings": asdict(settings),
        "tensorrt_version": trt.__version__,
        "network_mode": plan.network_mode,
        "network_flags": list(plan.network_flags),
        "builder_flags": flags,
        "gpu": gpu,
        "build_seconds": round(seconds, 3),
        "engine_device_memory_mb": round(device_memory / MIB, 1),
        "inputs": [tensor.as_dict() for tensor in tensors if tensor.is_input],
        "outputs": [tensor.as_dict() for tensor in tensors if not tensor.is_input],
        "source_onnx": {
            "path": str(onnx_model),
            "sha256": file_sha256(onnx_model),
            "qdq_nodes": facts.qdq_nodes,
            "fp16_tensors": facts.fp16_tensors,
        },
        "builder_log": log.as_dict(),
    }


# --- describing an engine ----------------------------------------------------------------------------


def flags_text(flags: Mapping[str, bool]) -> str:
    return ", ".join(f"{name} {'on' if on else 'off'}" for name, on in flags.items()) or "none"


def engine_evidence(record: Mapping[str, Any], runtime_version: str, runtime_gpu: str | None = None) -> str:
    """One line from the build record: what built the engine, how, on what; and what runs it."""
    gpu = record.get("gpu", {})
    source = record.get("source_onnx", {})
    built_on = f"{gpu.get('name', '?')} (compute {gpu.get('compute_capability', '?')})"
    parts = [
        f"TensorRT {record.get('tensorrt_version', '?')} engine built {record.get('network_mode', '?')} with flags "
        f"{flags_text(record.get('builder_flags', {}))} on {built_on}",
        f"ONNX with {source.get('qdq_nodes', 0)} Q/DQ nodes and {source.get('fp16_tensors', 0)} fp16 tensors",
        f"run by TensorRT {runtime_version}" + (f" on {runtime_gpu}" if runtime_gpu else ""),
    ]
    return "; ".join(parts)
