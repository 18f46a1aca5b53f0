"""PyTorch on an NVIDIA GPU (deeplabv3_pipeline/backends/pytorch/cuda.py).

Here (no GPU): the refusals, with CUDA's facts stood in; and the pipeline against a stand-in for CUDA's
streams whose queued work runs only when an event after it is waited for, in the order it was queued, on
a clock that each copy and compute advances by a known time. A slot reused too early, an output read
before its copy, or an input overwritten before its copy ran then shows as a wrong prediction; the
order of the host's calls shows the overlap; the figures show what the events timed. On a machine with
a GPU, scripts/gpu_check.py runs the same code on CUDA (README, "NVIDIA GPUs").
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from deeplabv3_pipeline.backends import open_backend, require_precision
from deeplabv3_pipeline.backends.pytorch import cuda
from deeplabv3_pipeline.backends.pytorch.cuda import PyTorchCudaBackend
from deeplabv3_pipeline.backends.pytorch.runner import PyTorchBackend
from deeplabv3_pipeline.benchmark.timing import inference_summary
from deeplabv3_pipeline.devices import CudaFacts, device_problems, parse_device
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import write_atomic
from deeplabv3_pipeline.model.mmseg_model import load_export_model
from deeplabv3_pipeline.planning.variants import check_precisions

from ..conftest import MODEL_CONFIG, SHAPE, run_infer
from ..helpers import CONFIG, merged

H, W = 4, 6


class LazyStreams:
    """The pipeline's stream operations (``cuda.StreamOps``) on the CPU: work and event records queue in one
    line and run, in order, only when the host waits for an event; each copy in, compute and copy out
    moves the clock by STEP_MS."""

    device = torch.device("cpu")
    STEP_MS: ClassVar[dict[str, float]] = {"copy_in": 1.0, "compute": 5.0, "copy_out": 2.0}

    def __init__(self) -> None:
        self.stream_names = iter(("copy_in", "compute", "copy_out"))  # the pipeline makes them in this order
        self.queue: list = []
        self.log: list[str] = []  # what the host did, in order
        self.clock = 0.0

    def stream(self) -> str:
        return next(self.stream_names)

    def event(self) -> SimpleNamespace:
        return SimpleNamespace(time=None, pending=0)

    def pinned(self, shape, dtype):
        return torch.zeros(shape, dtype=dtype)

    def empty(self, shape, dtype):
        return torch.full(shape, -7 if not dtype.is_floating_point else float("nan"), dtype=dtype)

    def record(self, event, stream) -> None:
        event.pending += 1

        def mark() -> None:
            event.time, event.pending = self.clock, event.pending - 1

        self.queue.append(mark)

    def wait(self, stream, event) -> None:
        pass  # one line for every stream: what is queued after the event runs after it

    def launch(self, stream, work) -> None:
        self.log.append(f"launch {stream}")

        def step() -> None:
            work()
            self.clock += self.STEP_MS[stream]

        self.queue.append(step)

    def synchronize(self, event) -> None:
        self.log.append("wait")
        while event.pending:
            assert self.queue, "waited for an event that was never recorded"
            self.queue.pop(0)()

    def elapsed_ms(self, start, end) -> float:
        return end.time - start.time


class ChannelArgmax(torch.nn.Module):
    """Class ids 0..2: the channel of each pixel's largest value (through an identity 1x1 convolution: exact
    in fp32, in any memory format)."""

    input_shape = (H, W)
    mode = SimpleNamespace(describe=lambda: "whole")

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3)[:, :, None, None])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(image).argmax(1, keepdim=True)


def images(count: int, tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((1, 3, H, W)).astype(np.float32) for _ in range(count)]
    paths = []
    for index, array in enumerate(arrays):
        paths.append(tmp_path / f"frame{index}.bin")
        write_atomic(paths[-1], array)
    return arrays, paths


def test_the_pipeline_overlaps_each_image_with_the_last_and_times_what_the_events_time(tmp_path):
    streams = LazyStreams()
    backend = PyTorchCudaBackend(ChannelArgmax(), "cuda:0", "fp32", ops=streams)
    arrays, paths = images(4, tmp_path)
    run = backend.infer_files(paths, tmp_path / "out", "BIN", warmup=1)

    for array, path in zip(arrays, paths, strict=True):  # each prediction is its own image's
        written = np.fromfile(tmp_path / "out" / run.files[path.name], np.int64).reshape(1, 1, H, W)
        np.testing.assert_array_equal(written, array.argmax(1)[:, None])
    # the warm-up alone, then image i queued before the host waits for image i-1: its copy in and compute
    # overlap i-1's copy back
    one = ["launch copy_in", "launch compute", "launch copy_out"]
    assert streams.log == [*one, "wait", *one, *one, "wait", *one, "wait", *one, "wait", "wait"]
    assert run.compute_ms == dict.fromkeys((path.name for path in paths), 5.0)
    assert run.extra["h2d_ms"]["mean"] == 1.0 and run.extra["d2h_ms"]["percentile(99%)"] == 2.0
    assert run.extra["gpu"] == {"name": "stand-in", "device": "cuda:0"} and run.extra["compile_s"] is None
    assert run.extra["versions"]["torch"] == torch.__version__
    summary = inference_summary("pytorch", run.compute_ms, run.wall_s, run.files, {})
    assert summary["throughput"] == 200.0 and summary["compute_time"]["median"] == 5.0  # 1000 / 5 ms


def test_a_slot_whose_copy_back_is_not_waited_for_is_caught_by_the_stand_in(tmp_path, monkeypatch):
    """The stand-in can fail: a pipeline that reads a slot's output without waiting for its copy back gets
    what the slot held before, not its image's classes."""
    streams = LazyStreams()
    backend = PyTorchCudaBackend(ChannelArgmax(), "cuda:0", "fp32", ops=streams)
    monkeypatch.setattr(streams, "synchronize", lambda event: None)
    monkeypatch.setattr(streams, "elapsed_ms", lambda start, end: 0.0)
    arrays, paths = images(3, tmp_path)
    run = backend.infer_files(paths, tmp_path / "out", "BIN", warmup=0)
    wrong = [
        not np.array_equal(np.fromfile(tmp_path / "out" / run.files[path.name], np.int64), array.argmax(1).ravel())
        for array, path in zip(arrays, paths, strict=True)
    ]
    assert all(wrong)


def test_compiling_happens_when_the_model_is_opened_and_is_timed_apart(tmp_path, monkeypatch):
    calls = []

    def fake_compile(model, **options):
        assert options == {"dynamic": False}

        def compiled(image):
            calls.append(len(calls))
            return model(image)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    backend = PyTorchCudaBackend(ChannelArgmax(), "cuda:0", "bf16", compile=True, ops=LazyStreams())
    assert calls == [0] and backend.compile_s is not None and backend.compile_s >= 0  # at open, on a zero image
    assert "torch.compile" in backend.precision_evidence and "dtype=torch.bfloat16" in backend.precision_evidence
    assert backend.inference_precision == "bf16"  # what the convolution computed in, seen
    _, paths = images(2, tmp_path)
    run = backend.infer_files(paths, tmp_path / "out", "BIN", warmup=0)
    assert run.extra["compile_s"] == backend.compile_s and len(calls) == 3


def test_the_precision_is_what_the_convolutions_compute_not_what_was_asked(monkeypatch):
    """An autocast that does nothing (planted): the run is seen to compute fp32 and stops before any image."""
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    backend = PyTorchCudaBackend(ChannelArgmax(), "cuda:0", "bf16", ops=LazyStreams())
    assert backend.inference_precision == "fp32"
    with pytest.raises(UserError, match=r"asked for precision bf16, but pytorch runs model.pth at fp32"):
        require_precision(backend, "bf16", Path("model.pth"))


def test_the_mmseg_model_through_the_pipeline_agrees_with_the_cpu_reference(checkpoint, prep_dir, tmp_path):
    """The workflow's model, channels-last, through the stand-in's streams: the CPU reference's classes."""
    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE)
    on_streams = PyTorchCudaBackend(model, "cuda:0", "fp32", ops=LazyStreams())
    reference = PyTorchBackend(checkpoint, MODEL_CONFIG, SHAPE, threads=1)
    paths = sorted(prep_dir.glob("*.bin"))[:2]
    run = on_streams.infer_files(paths, tmp_path / "out", "BIN", warmup=0)
    for path in paths:
        image = np.fromfile(path, np.float32).reshape(1, 3, *SHAPE)
        predicted = np.fromfile(tmp_path / "out" / run.files[path.name], np.int64).reshape(1, 1, *SHAPE)
        assert np.mean(predicted == reference.run(image)) >= 0.999, path.name
    assert "channels-last" in on_streams.precision_evidence and "without autocast" in on_streams.precision_evidence
    assert (
        on_streams.inference_precision == "fp32" and "first convolution computes fp32" in on_streams.precision_evidence
    )
    assert "eager on the CPU without autocast" in reference.precision_evidence


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cpu:0", "cuda:-1", ""])
def test_a_device_that_is_not_one_is_refused_naming_the_key(text):
    with pytest.raises(UserError, match=r"pytorch.device .* is not a device: use cpu, cuda or cuda:<index>"):
        parse_device(text)


def test_devices_parse():
    assert [parse_device(text) for text in ("cpu", "cuda", "cuda:3")] == [("cpu", 0), ("cuda", 0), ("cuda", 3)]


@pytest.mark.parametrize(
    ("facts", "device", "expected"),
    [
        (CudaFacts("2.13.0+cpu", None, 0), "cuda", "CPU-only build: install a CUDA build of torch"),
        (CudaFacts("2.13.0", "12.8", 0), "cuda:0", "sees no NVIDIA GPU"),
        (CudaFacts("2.13.0", "12.8", 2), "cuda:2", "this machine has 2 GPU(s), cuda:0..cuda:1"),
    ],
)
def test_what_cuda_lacks_is_named_with_the_fix(facts, device, expected):
    (problem,) = device_problems(device, facts)
    assert problem.startswith(f"pytorch.device {device}: ") and expected in problem


def test_a_gpu_that_is_there_and_the_cpu_have_no_problems():
    assert device_problems("cuda:1", CudaFacts("2.13.0", "12.8", 2)) == []
    assert device_problems("cpu", CudaFacts("2.13.0+cpu", None, 0)) == []


def test_the_stage_cli_refuses_cuda_without_one_and_fp16_on_the_cpu(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(CudaFacts, "here", classmethod(lambda cls: CudaFacts("2.13.0+cpu", None, 0)))
    options = {"model_config": MODEL_CONFIG, "input_shape": SHAPE}
    with pytest.raises(UserError, match=r"--torch-device cuda: this PyTorch \(2.13.0\+cpu\) is a CPU-only build"):
        open_backend("pytorch", checkpoint, torch_device="cuda", **options)
    with pytest.raises(UserError, match="precision fp16 of the pytorch backend runs on an NVIDIA GPU only"):
        open_backend("pytorch", checkpoint, precision="fp16", **options)


def test_the_stage_cli_says_it_in_one_line(checkpoint, prep_dir, tmp_path):
    flags = ("--model-config", MODEL_CONFIG, "--input-shape", *SHAPE, "--precision", "fp16")
    failed = run_infer("pytorch", checkpoint, prep_dir, tmp_path, *flags, check=False)
    assert failed.returncode == 2 and failed.stderr.startswith("error: precision fp16 of the pytorch backend")
    assert len(failed.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("*.bin"))


def test_the_config_asking_fp16_of_the_cpu_is_refused_naming_the_key():
    fp16 = merged(CONFIG, {"matrix": {"variants": ["pytorch-fp32", "pytorch-fp16"]}})
    with pytest.raises(UserError, match=r"^matrix.variants: pytorch-fp16: precision fp16 .* set pytorch.device: cuda"):
        check_precisions(fp16)
    on_gpu = merged(fp16, {"pytorch": {"device": "cuda:1"}})
    check_precisions(on_gpu)
    main = merged(CONFIG, {"backend": "pytorch", "precision": "fp16"})
    with pytest.raises(UserError, match=r"^backend/precision: pytorch-fp16: "):
        check_precisions(main)
    # the per-layer comparison runs PyTorch on the CPU, whatever pytorch.device says
    with pytest.raises(UserError, match=r"^debug.variants: pytorch-fp16: "):
        check_precisions(merged(on_gpu, {"debug": {"variants": ["pytorch-fp16"]}}))


def test_tf32_is_switched_off_so_that_every_getter_still_answers():
    """The legacy flags: on torch >= 2.9 they set the new API's too, and reading them still works (after the
    new API's setters, torch 2.13 raises on reading them, and inductor reads them)."""
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        cuda.use_ieee_fp32(torch)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (False, False)
        assert cuda.cuda_float32_settings(torch).startswith("cudnn.allow_tf32=False, cuda.matmul.allow_tf32=False")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def test_the_cpu_benchmark_and_the_layer_comparison_see_pytorch_on_the_cpu():
    """A backend's cpu_config: PyTorch's moves it to the CPU, leaving the config it was given as it was; the
    others' is the config itself."""
    from deeplabv3_pipeline.backends import REGISTRY

    on_gpu = merged(CONFIG, {"pytorch": {"device": "cuda:1"}})
    moved = REGISTRY["pytorch"].cpu_config(on_gpu)
    assert moved["pytorch"] == {**on_gpu["pytorch"], "device": "cpu"} and on_gpu["pytorch"]["device"] == "cuda:1"
    assert REGISTRY["onnxruntime"].cpu_config(on_gpu) is on_gpu
