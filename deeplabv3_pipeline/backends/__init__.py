"""In-process inference backends behind one interface: ``run(image) -> class ids``.

Every backend takes a normalised float32 (1,3,H,W) image and returns int64 (1,1,H,W)
class ids, the layout of the exported ONNX model. Ascend is not in-process: ais_bench runs
it as a separate program (see :mod:`deeplabv3_pipeline.ascend`).

Precision is asked for explicitly (``open_backend(..., precision=...)``) and each backend reports
what its runtime says it computes (``inference_precision``, with ``precision_evidence``): a runtime's
default is not always fp32 (OpenVINO picks bf16 on CPUs with native BF16). Where the model cannot
give the precision asked for (int8 asked of an fp32 model) the reported value differs from the
request, and the caller decides; a backend never pretends.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UserError

IN_PROCESS_BACKENDS = ("onnxruntime", "openvino", "pytorch", "tensorrt")
# What each backend can be asked for. Ascend is run by ais_bench, not here; it is listed so the workflow
# validates its configuration against the same table (ATC's default precision_mode is force_fp16).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
    "pytorch": ("fp32", "bf16"),
    "tensorrt": ("fp32", "fp16"),
    "ascend": ("fp16", "fp32"),
}
# What a backend can report. "int8": the model's quantized operations run int8 and the rest fp32.
INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class Backend(Protocol):
    name: str
    input_shape: tuple[int, int]
    inference_precision: str  # one of INFERENCE_PRECISIONS: what the runtime reports it computes
    precision_evidence: str  # one line: where inference_precision came from

    def run(self, image: np.ndarray) -> np.ndarray: ...


def default_precision(name: str) -> str:
    """A backend's default precision, the first it lists: fp32, and fp16 for ascend (ATC's own default)."""
    return PRECISIONS[name][0]


def check_precision(name: str, precision: str) -> None:
    """A :class:`UserError` naming the backend's precisions when ``precision`` is not one of them."""
    allowed = PRECISIONS.get(name)
    if allowed is not None and precision not in allowed:
        raise UserError(f"backend {name} has no precision {precision}: it runs {', '.join(allowed)}")


def other_precisions(name: str, precision: str) -> tuple[str, ...]:
    """The precisions of backend ``name`` besides ``precision``: what to suggest when that one cannot run."""
    return tuple(other for other in PRECISIONS[name] if other != precision)


def require_precision(backend: Backend, wanted: str, model: Path) -> None:
    """Stop when the runtime runs another precision than the one asked for (a label must be true)."""
    if backend.inference_precision != wanted:
        raise UserError(
            f"asked for precision {wanted}, but {backend.name} runs {model} at {backend.inference_precision} "
            f"({backend.precision_evidence}): pass --precision {backend.inference_precision}, or the model "
            f"made for {wanted}"
        )


def open_backend(
    name: str,
    model: Path,
    *,
    threads: int = 0,
    model_config: str | None = None,
    input_shape: tuple[int, int] | None = None,
    providers: list[str] | None = None,
    precision: str = "fp32",
) -> Backend:
    """Load ``model`` for backend ``name`` at ``precision``. ``threads`` = 0 lets the runtime choose.

    The backend's ``inference_precision`` says what actually runs; compare it with ``precision``.
    """
    model = Path(model)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist: run the workflow's export rules first")
    check_precision(name, precision)
    if name == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, threads=threads, providers=providers or ["CPUExecutionProvider"])
    if name == "tensorrt":
        from .onnxruntime_backend import OnnxRuntimeBackend, tensorrt_providers

        return OnnxRuntimeBackend(model, threads=threads, providers=tensorrt_providers(model, precision), name=name)
    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(model, threads=threads, precision=precision)
    if name == "pytorch":
        from .pytorch_backend import PyTorchBackend

        if model_config is None or input_shape is None:
            raise UserError("the pytorch backend needs --model-config and --input-shape besides the checkpoint")
        return PyTorchBackend(model, model_config, input_shape, threads=threads, precision=precision)
    raise UserError(f"unknown backend {name!r}: choose one of {', '.join(IN_PROCESS_BACKENDS)} or ascend")


def static_image_shape(shape: list, source: Path) -> tuple[int, int]:
    """(H, W) of a model input declared as (1, 3, H, W) with fixed sizes."""
    if len(shape) != 4 or not all(isinstance(size, int) for size in shape[2:]):
        raise UserError(f"model {source} input shape {shape} is not a fixed (1,3,H,W): export it with a fixed shape")
    return int(shape[2]), int(shape[3])


def open_checked(args: Namespace) -> Backend:
    """``open_backend`` with a stage CLI's flags (``--backend --model --threads --model-config --input-shape
    --providers --precision``), stopping unless the runtime computes in the precision asked for."""
    backend = open_backend(
        args.backend,
        args.model,
        threads=args.threads,
        model_config=args.model_config,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        providers=args.providers,
        precision=args.precision,
    )
    require_precision(backend, args.precision, args.model)
    return backend
