"""TensorRT: a serialized engine (built by scripts/build_engine.py, rule build_engine) run with the CUDA
runtime bindings, as trtexec runs one.

``infer_files`` pipelines a pass over ``.bin`` files. Two slots, each with pinned host and device
buffers for the input and the output, take turns; three streams (input copies, compute, output copies)
ordered by events let the copy of image i+1 to the GPU and of image i-1 back overlap the compute of
image i, while a thread reads the next file and another writes the finished outputs. Per image, the
compute time is the CUDA events around ``execute_async_v3`` on the compute stream (trtexec's "GPU Compute
Time"); the copies are timed alike (its "H2D/D2H Latency"); the pass's wall time is end to end.

The precision is the engine's: its build record (``<engine>.json``) says what it was built for and how
(weakly typed with FP16/INT8 flags on TensorRT 10, strongly typed on 11), and the caller compares it
with what it asked for. TensorRT and cuda-python are imported when an engine is opened.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.planning.artifacts import record_path

from ...errors import UserError
from ..files import FileRun, run_pipelined
from . import engine as engines
from .engine import MIB, TensorInfo, cuda_value

REBUILD = "rebuild it with scripts/build_engine.py (the workflow's build_engine rule)"
CLASS_ID_TYPES = ("INT32", "INT64")
EVENTS = ("input_start", "input_end", "compute_start", "compute_end", "output_start", "output_end")


def read_build_record(engine: Path) -> dict[str, Any]:
    """The build record beside ``engine``, checked to describe this engine file."""
    path = record_path(engine)
    if not engine.is_file():
        raise UserError(
            f"TensorRT engine {engine} does not exist: build it with scripts/build_engine.py (the "
            "workflow's build_engine rule)"
        )
    if not path.is_file():
        raise UserError(f"{path}, the build record of {engine}, does not exist: {REBUILD}")
    try:
        record = json.loads(path.read_text())
        precision = record["settings"]["precision"]
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a TensorRT build record ({error!r}): {REBUILD}") from error
    if precision not in engines.PRECISIONS:
        raise UserError(f"{path} records precision {precision!r}, not one of {', '.join(engines.PRECISIONS)}")
    size = engine.stat().st_size
    if record.get("engine_bytes") not in (None, size):
        raise UserError(f"{path} describes a {record['engine_bytes']}-byte engine, {engine} has {size}: {REBUILD}")
    return record


def version_problem(record: Mapping[str, Any], version: str, gpu: str) -> str:
    """Why an engine will not load here: engines are tied to the TensorRT version and GPU that built them."""
    built = record.get("gpu", {})
    return (
        f"was built by TensorRT {record.get('tensorrt_version', '?')} on {built.get('name', '?')} (compute "
        f"{built.get('compute_capability', '?')}), this is TensorRT {version} on {gpu}"
    )


def image_io(tensors: list[TensorInfo], engine: Path) -> tuple[TensorInfo, TensorInfo]:
    """The engine's one input, float32 (1,3,H,W), and one output, class ids (1,1,H,W) in int32 or int64."""
    inputs = [tensor for tensor in tensors if tensor.is_input]
    outputs = [tensor for tensor in tensors if not tensor.is_input]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"engine {engine} has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1")
    image, ids = inputs[0], outputs[0]
    if image.dtype != "FLOAT" or len(image.shape) != 4 or image.shape[:2] != (1, 3) or min(image.shape) < 1:
        raise UserError(
            f"engine {engine} input {image.name} is {image.dtype} {image.shape}, expected FLOAT (1, 3, H, W) with "
            "fixed sizes: export the ONNX with a fixed shape and float32 input (convert_fp16.py keeps it)"
        )
    if ids.dtype not in CLASS_ID_TYPES or ids.shape != (1, 1, *image.shape[2:]):
        raise UserError(
            f"engine {engine} output {ids.name} is {ids.dtype} {ids.shape}, expected class ids INT32/INT64 "
            f"(1, 1, {image.shape[2]}, {image.shape[3]}): is it the ArgMax model of export_onnx?"
        )
    return image, ids


def host_view(pointer: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A NumPy array over pinned host memory (no copy); valid until that memory is freed."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.ctypeslib.as_array((ctypes.c_ubyte * nbytes).from_address(pointer))
    return raw.view(dtype).reshape(shape)


@dataclass
class Slot:
    """One image's buffers and the events that order and time its copies and compute."""

    host_input: np.ndarray
    host_output: np.ndarray
    device_input: int
    device_output: int
    events: dict[str, Any]


class TensorRTBackend:
    """An engine opened on one GPU with its buffers, streams and events; ``close()`` (or ``with``) frees them."""

    name = "tensorrt"
    input_shape: tuple[int, int]  # (H, W) of the engine's float32 (1,3,H,W) input
    inference_precision: str  # the build record's settings.precision
    precision_evidence: str  # one line from the build record, and this runtime

    def __init__(self, engine: Path, *, device: int = 0, precision: str = "fp32") -> None:
        self._closed = True  # until everything is allocated; close() and __del__ rely on it
        self._device_pointers: list[int] = []
        self._host_pointers: list[int] = []
        self._streams: list[Any] = []
        self._events: list[Any] = []
        self._slots: list[Slot] = []
        self._context: Any = None
        self._engine: Any = None
        self._runtime: Any = None
        engine = Path(engine)
        problems = engines.environment_problems()
        if problems:
            raise UserError("the tensorrt backend cannot run here: " + "; ".join(problems))
        record = read_build_record(engine)
        self.engine_path = engine
        self.device = device
        self.requested_precision = precision
        self.inference_precision = record["settings"]["precision"]
        trt, cudart = engines.import_tensorrt(), engines.import_cudart()
        self._trt, self._cudart = trt, cudart
        cuda_value(cudart.cudaSetDevice(device), "cudaSetDevice")
        gpu = engines.gpu_facts(cudart, device)
        self.gpu_name: str = gpu["name"]
        self.precision_evidence = engines.engine_evidence(record, trt.__version__, self.gpu_name)
        if record.get("tensorrt_version") != trt.__version__:
            raise UserError(f"engine {engine} {version_problem(record, trt.__version__, self.gpu_name)}: {REBUILD}")

        free_before, _ = cuda_value(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        self._log = engines.BuildLog()
        self._logger = engines.make_logger(trt, self._log)  # must outlive the runtime and the engine
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine.read_bytes())
        if self._engine is None:
            reason = "; ".join(self._log.errors()[-2:]) or "TensorRT gave no reason"
            raise UserError(
                f"TensorRT cannot load engine {engine} ({reason}); it "
                f"{version_problem(record, trt.__version__, self.gpu_name)}: {REBUILD}"
            )
        self._closed = False
        try:
            self._open(engine)
        except BaseException:
            self.close()
            raise
        free_after, total = cuda_value(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        self.engine_device_memory_mb = round(engines.engine_device_memory(self._engine) / MIB, 1)
        # Weights, activation memory and these buffers: what opening the engine took on the device.
        self.memory_used_mb = round((free_before - free_after) / MIB, 1)
        self.device_memory_total_mb = round(total / MIB, 1)

    def _open(self, engine: Path) -> None:
        trt, cudart = self._trt, self._cudart
        image, ids = image_io(engines.engine_tensors(trt, self._engine), engine)
        self.input_name, self.output_name = image.name, ids.name
        self.input_shape = (image.shape[2], image.shape[3])
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise UserError(f"TensorRT cannot create an execution context for {engine}: {self._log.errors()[-1:]}")
        flags = getattr(cudart, "cudaStreamNonBlocking", None)
        for _ in ("input", "compute", "output"):
            # Non-blocking: no implicit ordering with the legacy default stream; the events order them.
            create = cudart.cudaStreamCreateWithFlags(flags) if flags is not None else cudart.cudaStreamCreate()
            self._streams.append(cuda_value(create, "cudaStreamCreate"))
        output_dtype = engines.numpy_dtype(ids.dtype)
        for _ in range(2):
            events = {}
            for event in EVENTS:
                events[event] = cuda_value(cudart.cudaEventCreate(), "cudaEventCreate")
                self._events.append(events[event])
            self._slots.append(
                Slot(
                    host_input=self._pinned(image.shape, np.dtype(np.float32)),
                    host_output=self._pinned(ids.shape, output_dtype),
                    device_input=self._device(int(np.prod(image.shape)) * 4),
                    device_output=self._device(int(np.prod(ids.shape)) * output_dtype.itemsize),
                    events=events,
                )
            )

    def _pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host memory: copies from it run asynchronously (pageable memory would stage them)."""
        nbytes = int(np.prod(shape)) * dtype.itemsize
        pointer = int(cuda_value(self._cudart.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._host_pointers.append(pointer)
        return host_view(pointer, shape, dtype)

    def _device(self, nbytes: int) -> int:
        pointer = int(cuda_value(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
        self._device_pointers.append(pointer)
        return pointer

    # --- running ------------------------------------------------------------------------------------

    def _enqueue(self, slot: Slot) -> None:
        """Queue the slot's copy in, compute and copy out on the three streams, each step after the last."""
        cudart, context = self._cudart, self._context
        copy_in, compute, copy_out = self._streams
        kinds = cudart.cudaMemcpyKind
        events = slot.events
        cuda_value(cudart.cudaEventRecord(events["input_start"], copy_in), "cudaEventRecord")
        cuda_value(
            cudart.cudaMemcpyAsync(
                slot.device_input,
                slot.host_input.ctypes.data,
                slot.host_input.nbytes,
                kinds.cudaMemcpyHostToDevice,
                copy_in,
            ),
            "cudaMemcpyAsync (host to device)",
        )
        cuda_value(cudart.cudaEventRecord(events["input_end"], copy_in), "cudaEventRecord")
        cuda_value(cudart.cudaStreamWaitEvent(compute, events["input_end"], 0), "cudaStreamWaitEvent")
        # Addresses are read at enqueue time, so each slot's buffers can be bound in turn.
        context.set_tensor_address(self.input_name, slot.device_input)
        context.set_tensor_address(self.output_name, slot.device_output)
        cuda_value(cudart.cudaEventRecord(events["compute_start"], compute), "cudaEventRecord")
        if not context.execute_async_v3(compute):
            raise UserError(f"TensorRT could not enqueue {self.engine_path}: {'; '.join(self._log.errors()[-2:])}")
        cuda_value(cudart.cudaEventRecord(events["compute_end"], compute), "cudaEventRecord")
        cuda_value(cudart.cudaStreamWaitEvent(copy_out, events["compute_end"], 0), "cudaStreamWaitEvent")
        cuda_value(cudart.cudaEventRecord(events["output_start"], copy_out), "cudaEventRecord")
        cuda_value(
            cudart.cudaMemcpyAsync(
                slot.host_output.ctypes.data,
                slot.device_output,
                slot.host_output.nbytes,
                kinds.cudaMemcpyDeviceToHost,
                copy_out,
            ),
            "cudaMemcpyAsync (device to host)",
        )
        cuda_value(cudart.cudaEventRecord(events["output_end"], copy_out), "cudaEventRecord")

    def _collect(self, slot: Slot) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Wait for the slot's copy out; its prediction (int64, a copy) and (h2d, compute, d2h) ms."""
        cudart, events = self._cudart, slot.events
        cuda_value(cudart.cudaEventSynchronize(events["output_end"]), "cudaEventSynchronize")

        def elapsed(start: str, end: str) -> float:
            return float(cuda_value(cudart.cudaEventElapsedTime(events[start], events[end]), "cudaEventElapsedTime"))

        times = (
            elapsed("input_start", "input_end"),
            elapsed("compute_start", "compute_end"),
            elapsed("output_start", "output_end"),
        )
        return slot.host_output.astype(np.int64), times

    def _ready(self) -> None:
        if self._closed:
            raise UserError(f"the TensorRT engine {self.engine_path} was closed")
        cuda_value(self._cudart.cudaSetDevice(self.device), "cudaSetDevice")  # CUDA's device is per thread

    def run(self, image: np.ndarray) -> np.ndarray:
        """One image, synchronously: int64 (1,1,H,W) class ids."""
        self._ready()
        slot = self._slots[0]
        if image.shape != slot.host_input.shape:
            raise UserError(f"backend tensorrt takes {slot.host_input.shape} images, got {image.shape}")
        np.copyto(slot.host_input, image, casting="same_kind")
        self._enqueue(slot)
        return self._collect(slot)[0]

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        """Every input through the pipeline (see the module's docstring); ``warmup`` untimed runs first."""
        self._ready()
        if not inputs:
            raise UserError("no input .bin files given to the tensorrt backend")

        def submit(slot: Slot, image: np.ndarray) -> None:
            np.copyto(slot.host_input, image)
            self._enqueue(slot)

        run = run_pipelined(self, inputs, output, outfmt, warmup, self._slots, submit, self._collect)
        free, total = cuda_value(self._cudart.cudaMemGetInfo(), "cudaMemGetInfo")
        run.extra["gpu"] = {
            "name": self.gpu_name,
            "memory_used_mb": self.memory_used_mb,
            "device_memory_used_mb": round((total - free) / MIB, 1),
            "device_memory_total_mb": round(total / MIB, 1),
            "engine_device_memory_mb": self.engine_device_memory_mb,
        }
        return run

    # --- cleanup ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context, buffers, streams and events, then the engine; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        cudart = self._cudart
        for stream in self._streams:
            with contextlib.suppress(Exception):
                cudart.cudaStreamSynchronize(stream)
        self._slots = []  # host views die before their memory
        self._context = None
        releases = (
            (self._device_pointers, cudart.cudaFree),
            (self._host_pointers, cudart.cudaFreeHost),
            (self._events, cudart.cudaEventDestroy),
            (self._streams, cudart.cudaStreamDestroy),
        )
        for handles, release in releases:
            for handle in handles:
                with contextlib.suppress(Exception):
                    release(handle)
        self._device_pointers, self._host_pointers, self._events, self._streams = [], [], [], []
        self._engine = None
        self._runtime = None

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
