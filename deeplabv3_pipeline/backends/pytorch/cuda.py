"""The mmseg model in PyTorch on an NVIDIA GPU (config ``pytorch.device: cuda`` or ``cuda:N``).

fp32 is fp32: TF32 is switched off for cuDNN's convolutions and for matmuls (PyTorch lets cuDNN use
TF32 by default), and the summary records the settings. fp16 and bf16 run the model under
``torch.autocast("cuda", dtype)``. Weights and the input are channels-last (NHWC, what cuDNN's tensor
core convolutions read without a transpose); cuDNN picks its fastest algorithms for the fixed input
size (``cudnn.benchmark``) during the warm-up.

``infer_files`` pipelines a pass over ``.bin`` files as the TensorRT runner does
(:func:`..files.run_pipelined`): two slots, each with pinned host buffers and device buffers for the
image and the class ids, take turns on three streams (copies in, compute, copies out) ordered by
events, so the copy of image i+1 to the GPU and of image i-1 back overlap the compute of image i while
threads read the next file and write the last prediction. The compute time per image is the CUDA
events around the model call on the compute stream (ais_bench's ``NPU_compute_time``), the copies
are timed alike, the pass's wall time is end to end.

Every stream operation goes through :class:`TorchCuda`, so the pipeline's order can be tested on a
machine without CUDA against a stand-in whose streams run only when waited for (tests/unit/test_cuda.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...devices import DEVICE_KEY, parse_device
from ...errors import UserError
from ..files import FileRun, check_prediction, run_pipelined, warm_up

CUDA_PRECISIONS = ("fp32", "fp16", "bf16")
EVENTS = ("input_start", "input_end", "compute_start", "compute_end", "output_start", "output_end")
MIB = 1 << 20


def precision_problem(precision: str, device: str, key: str = DEVICE_KEY) -> str | None:
    """Why ``precision`` cannot run on ``device`` (fp16 on the CPU: PyTorch's CPU kernels are fp32/bf16)."""
    kind, _ = parse_device(device, key)
    if kind == "cpu" and precision == "fp16":
        return (
            f"precision fp16 of the pytorch backend runs on an NVIDIA GPU only, and {key} is cpu: set {key}: cuda "
            "on a machine with one, or use pytorch-fp32 / pytorch-bf16 on the CPU"
        )
    return None


# ---------------------------------------------------------------- the device's settings


def use_ieee_fp32(torch: Any) -> None:
    """fp32 convolutions and matmuls in IEEE fp32, not TF32. With the ``allow_tf32`` flags, which every
    PyTorch this may meet has: on the ones that have the ``fp32_precision`` API too they set it, and their
    getters still answer (after the new API's setters, torch 2.13 raises on reading them, and inductor
    reads them)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def cuda_float32_settings(torch: Any) -> str:
    """The settings that decide whether fp32 convolutions and matmuls run in TF32, as they are now."""
    settings = [
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}",
        f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}",
    ]
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        settings.append(
            f"(cudnn conv fp32_precision={conv.fp32_precision}, "
            f"cuda matmul fp32_precision={torch.backends.cuda.matmul.fp32_precision})"
        )
    return ", ".join(settings)


def runtime_versions(torch: Any) -> dict[str, str | None]:
    """torch, the CUDA it was built with and cuDNN, for the summary."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": None if cudnn is None else str(cudnn)}


# ---------------------------------------------------------------- streams


class StreamOps(Protocol):
    """The stream operations the pipeline uses: CUDA's (:class:`TorchCuda`), or a test's stand-in."""

    def stream(self) -> Any: ...
    def event(self) -> Any: ...
    def pinned(self, shape: tuple[int, ...], dtype: Any) -> Any: ...
    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any: ...
    def record(self, event: Any, stream: Any) -> None: ...
    def wait(self, stream: Any, event: Any) -> None: ...
    def launch(self, stream: Any, work: Callable[[], None]) -> None: ...
    def synchronize(self, event: Any) -> None: ...
    def elapsed_ms(self, start: Any, end: Any) -> float: ...


class TorchCuda:
    """:class:`StreamOps` on one CUDA device: work is queued on the device's streams and returns at once."""

    def __init__(self, index: int) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", index)

    def stream(self) -> Any:
        return self.torch.cuda.Stream(self.device)

    def event(self) -> Any:
        return self.torch.cuda.Event(enable_timing=True)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> Any:
        # page-locked: copies from and to it run asynchronously (pageable memory would be staged)
        return self.torch.empty(shape, dtype=dtype, pin_memory=True)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.torch.empty(shape, dtype=dtype, device=self.device)

    def record(self, event: Any, stream: Any) -> None:
        event.record(stream)

    def wait(self, stream: Any, event: Any) -> None:
        stream.wait_event(event)

    def launch(self, stream: Any, work: Callable[[], None]) -> None:
        with self.torch.cuda.stream(stream):
            work()

    def synchronize(self, event: Any) -> None:
        event.synchronize()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(start.elapsed_time(end))


@dataclass
class Slot:
    """One image's buffers, pinned on the host and on the device, and the events that order and time it."""

    host_input: Any
    device_input: Any
    device_output: Any
    host_output: Any
    events: dict[str, Any]


class CudaPipeline:
    """``forward`` (a device (1,3,H,W) float32 tensor -> (1,1,H,W) class ids) run through two slots on
    three streams of ``ops`` (the module's docstring)."""

    def __init__(self, ops: StreamOps, forward: Callable[[Any], Any], input_shape: tuple[int, int]) -> None:
        import torch

        self.ops = ops
        self.forward = forward
        self.input_shape = tuple(input_shape)
        image, ids = (1, 3, *self.input_shape), (1, 1, *self.input_shape)
        self.copy_in, self.compute, self.copy_out = ops.stream(), ops.stream(), ops.stream()
        self.slots = [
            Slot(
                host_input=ops.pinned(image, torch.float32),
                device_input=ops.empty(image, torch.float32),
                device_output=ops.empty(ids, torch.int64),
                host_output=ops.pinned(ids, torch.int64),
                events={name: ops.event() for name in EVENTS},
            )
            for _ in range(2)
        ]

    def submit(self, slot: Slot, image: np.ndarray) -> None:
        """Fill the slot's pinned input and queue its copy in, compute and copy out, each after the last."""
        ops, events = self.ops, slot.events
        if image.shape != tuple(slot.host_input.shape):
            raise UserError(f"backend pytorch on CUDA takes {tuple(slot.host_input.shape)} images, got {image.shape}")
        np.copyto(slot.host_input.numpy(), image, casting="same_kind")
        ops.record(events["input_start"], self.copy_in)
        ops.launch(self.copy_in, lambda: slot.device_input.copy_(slot.host_input, non_blocking=True))
        ops.record(events["input_end"], self.copy_in)
        ops.wait(self.compute, events["input_end"])
        ops.record(events["compute_start"], self.compute)
        # into the slot's own buffer: the model's output is freed on the compute stream, which made it
        ops.launch(self.compute, lambda: slot.device_output.copy_(self.forward(slot.device_input)))
        ops.record(events["compute_end"], self.compute)
        ops.wait(self.copy_out, events["compute_end"])
        ops.record(events["output_start"], self.copy_out)
        ops.launch(self.copy_out, lambda: slot.host_output.copy_(slot.device_output, non_blocking=True))
        ops.record(events["output_end"], self.copy_out)

    def collect(self, slot: Slot) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Wait for the slot's copy out: its class ids (a copy) and (copy in, compute, copy out) ms."""
        ops, events = self.ops, slot.events
        ops.synchronize(events["output_end"])
        times = (
            ops.elapsed_ms(events["input_start"], events["input_end"]),
            ops.elapsed_ms(events["compute_start"], events["compute_end"]),
            ops.elapsed_ms(events["output_start"], events["output_end"]),
        )
        return slot.host_output.numpy().copy(), times

    def run(self, image: np.ndarray) -> np.ndarray:
        """One image, synchronously."""
        slot = self.slots[0]
        self.submit(slot, image)
        return self.collect(slot)[0]


# ---------------------------------------------------------------- the backend


def observed_precision(model: Any, device: Any, autocast: Callable[[], Any], input_shape: tuple[int, ...]) -> str:
    """The precision the model's first convolution computes in under ``autocast`` on ``device``, from the
    dtype of its output on a zero image: what runs, not what was asked for (the caller compares them)."""
    import torch

    conv = next((module for module in model.modules() if isinstance(module, torch.nn.Conv2d)), None)
    if conv is None:
        return "unknown"
    seen: list[Any] = []
    handle = conv.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    try:
        with torch.no_grad(), autocast():
            model(torch.zeros((1, 3, *input_shape), device=device).contiguous(memory_format=torch.channels_last))
    finally:
        handle.remove()
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    return names.get(seen[0], str(seen[0])) if seen else "unknown"


def compile_first_call(run: Callable[[np.ndarray], Any], input_shape: tuple[int, ...]) -> float:
    """torch.compile compiles at a model's first call: that call, on a zero image, in seconds. Made when
    the model is opened, so the compile time is recorded apart and no image's time holds it."""
    start = time.perf_counter()
    run(np.zeros((1, 3, *input_shape), np.float32))
    return time.perf_counter() - start


class PyTorchCudaBackend:
    """The export wrapper of the mmseg model on one GPU (``device`` "cuda:N"), at ``precision`` (one of
    CUDA_PRECISIONS). The caller has checked that the GPU is there (``open_model``: before the model loads);
    ``ops``: a stand-in for CUDA's streams (tests), its tensors on the CPU."""

    name = "pytorch"

    def __init__(
        self,
        model: Any,
        device: str,
        precision: str = "fp32",
        *,
        compile: bool = False,
        ops: StreamOps | None = None,
    ) -> None:
        import torch

        _, index = parse_device(device)
        self.on_gpu = ops is None
        self.ops = ops or TorchCuda(index)
        self.device = device
        self.input_shape: tuple[int, int] = tuple(model.input_shape)
        if self.on_gpu:
            # (not torch.cuda.is_bf16_supported(): it counts emulation, and asks of the current device)
            if precision == "bf16" and torch.cuda.get_device_capability(index) < (8, 0):
                raise UserError(
                    f"precision bf16 needs an NVIDIA GPU of compute capability 8.0 or newer (Ampere); "
                    f"{torch.cuda.get_device_name(index)} is not: use pytorch-fp16 or pytorch-fp32"
                )
            use_ieee_fp32(torch)
            torch.backends.cudnn.benchmark = True  # the fastest algorithms for this fixed size (warm-up)
            torch.cuda.set_device(index)
        self.gpu_name = torch.cuda.get_device_name(index) if self.on_gpu else "stand-in"
        self.versions = runtime_versions(torch)
        on = getattr(self.ops, "device", torch.device("cpu"))  # (a stand-in's tensors are on the CPU)
        model = model.to(on, memory_format=torch.channels_last).eval()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        autocast = (lambda: torch.autocast(on.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
        # what the convolutions compute in, read off the first one's output (eager, before any compiling)
        self.inference_precision = observed_precision(model, on, autocast, self.input_shape)
        graph = torch.compile(model, dynamic=False) if compile else model

        def forward(image: Any) -> Any:
            with torch.no_grad(), autocast():
                return graph(image.contiguous(memory_format=torch.channels_last))

        self.pipeline = CudaPipeline(self.ops, forward, self.input_shape)
        self.compile_s = compile_first_call(self.pipeline.run, self.input_shape) if compile else None
        how = f'under torch.autocast("cuda", dtype={dtype})' if dtype else "without autocast"
        self.precision_evidence = (
            f"PyTorch {torch.__version__} (CUDA {self.versions['cuda']}, cuDNN {self.versions['cudnn']}) "
            f"{'compiled by torch.compile (inductor)' if compile else 'eager'} on {device} ({self.gpu_name}) {how}; "
            f"channels-last; the first convolution computes {self.inference_precision}; "
            f"{cuda_float32_settings(torch)}; test mode {model.mode.describe()}"
        )

    def run(self, image: np.ndarray) -> np.ndarray:
        prediction = self.pipeline.run(image)
        check_prediction(prediction, self.input_shape, f"backend {self.name}")
        return prediction

    def gpu_summary(self) -> dict[str, Any]:
        """The GPU and its memory: this process's peak during the timed pass, and the device's in use by anyone."""
        import torch

        summary: dict[str, Any] = {"name": self.gpu_name, "device": self.device}
        if self.on_gpu:
            index = self.ops.device.index
            free, total = torch.cuda.mem_get_info(index)
            summary.update(
                memory_used_mb=round(torch.cuda.max_memory_allocated(index) / MIB, 1),
                device_memory_used_mb=round((total - free) / MIB, 1),
                device_memory_total_mb=round(total / MIB, 1),
            )
        return summary

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        """Every input through the pipeline (the module's docstring); ``warmup`` untimed runs first."""
        if not inputs:
            raise UserError("no input .bin files given to the pytorch backend")
        pipeline = self.pipeline
        # the warm-up first (cuDNN's algorithm search and its workspaces), then the peak memory of the pass
        warm_up(self, inputs[0], (1, 3, *self.input_shape), warmup)
        if self.on_gpu:
            self.ops.torch.cuda.reset_peak_memory_stats(self.ops.device)
        run = run_pipelined(self, inputs, output, outfmt, 0, pipeline.slots, pipeline.submit, pipeline.collect)
        run.extra.update(gpu=self.gpu_summary(), versions=self.versions, compile_s=self.compile_s)
        return run
