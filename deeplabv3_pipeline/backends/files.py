"""Running an opened backend over ``.bin`` files into ais_bench's layout (``{stem}_0.bin``).

``run_files`` is what every in-process backend does by default: read the next input while the
current one computes (``read_ahead``), write outputs in the background (``background_writer``), and
time the model call alone. A backend with
its own pipeline (TensorRT's pinned buffers and CUDA streams, Ascend's ais_bench) returns the same
:class:`FileRun` from its own ``infer_files``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from deeplabv3_pipeline.benchmark.timing import latency_stats
from deeplabv3_pipeline.data.cityscapes import NUM_CLASSES
from deeplabv3_pipeline.io.binio import read_bin, write_atomic, write_npy
from deeplabv3_pipeline.io.progress import progress

from ..errors import UserError

if TYPE_CHECKING:
    from .base import ImageBackend

SlotT = TypeVar("SlotT")


@dataclass
class FileRun:
    """What one pass over the input files measured.

    ``compute_ms``: per input file name, the model's compute time alone (no file I/O; on a GPU, the
    device time between CUDA events). ``files``: input name -> output name. ``wall_s``: the whole pass,
    reading and writing included (end to end). ``compute_stats``: aggregate statistics for runners that
    report no per-image times (ais_bench); None where ``compute_ms`` has them. ``extra``: fields the
    backend adds to the summary (GPU memory, transfer times, its runner's own summary).
    """

    compute_ms: dict[str, float]
    files: dict[str, str]
    wall_s: float
    compute_stats: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def output_name(input_path: Path, outfmt: str) -> str:
    """ais_bench's naming: ``{input stem}_{output index}.{bin|npy}``; this model has one output."""
    return f"{input_path.stem}_0.{outfmt.lower()}"


def save_output(array: np.ndarray, path: Path) -> None:
    (write_npy if path.suffix == ".npy" else write_atomic)(path, array)


def check_prediction(prediction: np.ndarray, shape: tuple[int, int], source: str) -> None:
    """A prediction must be (1,1,H,W) class ids of Cityscapes' 19 classes: anything else is an error here,
    not a silently wrapped uint8 or a wrong mIoU later."""
    expected = (1, 1, *shape)
    if prediction.shape != expected:
        raise UserError(f"{source} returned shape {prediction.shape}, expected {expected}")
    if prediction.size and (prediction.min() < 0 or prediction.max() >= NUM_CLASSES):
        raise UserError(
            f"{source} returned class ids {int(prediction.min())}..{int(prediction.max())}, not "
            f"0..{NUM_CLASSES - 1}: is the model the 19-class Cityscapes one?"
        )


def warm_up(backend: ImageBackend, first: Path, shape: tuple[int, ...], count: int) -> None:
    """``count`` untimed runs on the first input (lazy initialisation, caches), before any clock starts."""
    if count:
        image = read_bin(first, np.float32, shape)
        for _ in range(count):
            backend.run(image)


def read_ahead(inputs: list[Path], shape: tuple[int, ...], label: str) -> Iterator[tuple[Path, np.ndarray]]:
    """Each input with its float32 image, in order; the next file is read in a background thread while
    the caller computes on this one, so reading stays off the compute path."""
    with ThreadPoolExecutor(1) as reader:
        pending: Future = reader.submit(read_bin, inputs[0], np.float32, shape)
        for index, path in enumerate(progress(inputs, len(inputs), label)):
            image = pending.result()
            if index + 1 < len(inputs):
                pending = reader.submit(read_bin, inputs[index + 1], np.float32, shape)
            yield path, image


@contextmanager
def background_writer() -> Iterator[Callable[[np.ndarray, Path], None]]:
    """``write(array, path)`` saving in a background thread (``save_output``); leaving the block waits
    for every write and raises the first that failed."""
    with ThreadPoolExecutor(1) as writer:
        writes: list[Future] = []
        yield lambda array, path: writes.append(writer.submit(save_output, array, path))
        for write in writes:
            write.result()


def run_pipelined(
    backend: ImageBackend,
    inputs: list[Path],
    output: Path,
    outfmt: str,
    warmup: int,
    slots: Sequence[SlotT],
    submit: Callable[[SlotT, np.ndarray], None],
    collect: Callable[[SlotT], tuple[np.ndarray, tuple[float, float, float]]],
) -> FileRun:
    """A GPU pipeline's pass over ``inputs`` (TensorRT's, PyTorch's on CUDA). ``submit(slot, image)``
    fills the slot's host buffer and queues its copy in, compute and copy out without waiting;
    ``collect(slot)`` waits for that slot's copy out: its prediction and the (copy in, compute, copy out)
    milliseconds the device timed. Two slots take turns: image i is submitted before image i-1 is
    collected, so the copy of i to the device and the copy of i-1 back overlap the compute of i, while
    :func:`read_ahead` reads image i+1 and :func:`background_writer` writes image i-1. A slot is
    submitted again only after it was collected (two rounds later), so its buffers are free then.
    ``warmup`` untimed ``backend.run`` calls first; the wall time is the pass's, end to end."""
    height, width = backend.input_shape
    shape = (1, 3, height, width)
    compute_ms: dict[str, float] = {}
    copy_ms: dict[str, list[float]] = {"h2d_ms": [], "d2h_ms": []}
    files: dict[str, str] = {}
    output.mkdir(parents=True, exist_ok=True)
    warm_up(backend, inputs[0], shape, warmup)
    start_all = time.perf_counter()  # end to end: every read, copy, compute and write, not the warm-up
    with background_writer() as write:

        def finish(slot: SlotT, path: Path) -> None:
            prediction, (h2d, compute, d2h) = collect(slot)
            check_prediction(prediction, (height, width), f"backend {backend.name}")
            compute_ms[path.name] = compute
            copy_ms["h2d_ms"].append(h2d)
            copy_ms["d2h_ms"].append(d2h)
            files[path.name] = output_name(path, outfmt)
            write(prediction, output / files[path.name])

        in_flight: tuple[SlotT, Path] | None = None
        for index, (path, image) in enumerate(read_ahead(inputs, shape, f"infer[{backend.name}]")):
            slot = slots[index % len(slots)]
            submit(slot, image)
            if in_flight is not None:
                finish(*in_flight)
            in_flight = (slot, path)
        if in_flight is not None:
            finish(*in_flight)
    wall = time.perf_counter() - start_all
    return FileRun(compute_ms, files, wall, extra={name: latency_stats(times) for name, times in copy_ms.items()})


def run_files(backend: ImageBackend, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
    """Compute every input with ``backend.run``; ``warmup`` untimed calls on the first one first."""
    height, width = backend.input_shape
    shape = (1, 3, height, width)
    compute_ms: dict[str, float] = {}
    files: dict[str, str] = {}
    output.mkdir(parents=True, exist_ok=True)
    warm_up(backend, inputs[0], shape, warmup)
    start_all = time.perf_counter()  # end to end: every read, compute and write, not the warm-up
    with background_writer() as write:
        for path, image in read_ahead(inputs, shape, f"infer[{backend.name}]"):
            start = time.perf_counter()
            prediction = backend.run(image)
            compute_ms[path.name] = (time.perf_counter() - start) * 1000.0
            check_prediction(prediction, (height, width), f"backend {backend.name}")
            files[path.name] = output_name(path, outfmt)
            write(prediction.astype(np.int64, copy=False), output / files[path.name])
    return FileRun(compute_ms, files, time.perf_counter() - start_all)
