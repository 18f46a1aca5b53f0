"""The backends, one module each (``<name>_backend.py``), listed in :data:`REGISTRY`.

Every backend takes a normalised float32 (1,3,H,W) image and returns int64 (1,1,H,W) class ids, the
layout of the exported ONNX model, and writes ``{stem}_0.bin`` per input (ais_bench's layout) through
its ``infer_files``. The interface is in :mod:`.base`; the workflow (schema check, rules, tool checks),
``infer.py`` and the benchmark read this registry, so adding a backend means adding its module here.

Precision is asked for explicitly and each backend reports what its runtime says it computes
(``inference_precision``, with ``precision_evidence``): a runtime's default is not always fp32 (OpenVINO
picks bf16 on CPUs with native BF16). Where the model cannot give the precision asked for (int8 asked
of an fp32 model) the reported value differs from the request, and :func:`require_precision` stops.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import ascend_backend, onnxruntime_backend, openvino_backend, pytorch_backend, tensorrt_backend
from .base import INFERENCE_PRECISIONS, Backend, BackendSpec, static_image_shape

REGISTRY: dict[str, BackendSpec] = {
    module.SPEC.name: module.SPEC
    for module in (onnxruntime_backend, openvino_backend, pytorch_backend, tensorrt_backend, ascend_backend)
}
BACKENDS = tuple(REGISTRY)
IN_PROCESS_BACKENDS = tuple(name for name, spec in REGISTRY.items() if spec.in_process)
PRECISIONS: dict[str, tuple[str, ...]] = {name: spec.precisions for name, spec in REGISTRY.items()}
ALL_PRECISIONS = tuple(
    precision for precision in INFERENCE_PRECISIONS if any(precision in p for p in PRECISIONS.values())
)

__all__ = [
    "ALL_PRECISIONS",
    "BACKENDS",
    "INFERENCE_PRECISIONS",
    "IN_PROCESS_BACKENDS",
    "PRECISIONS",
    "REGISTRY",
    "Backend",
    "BackendSpec",
    "add_backend_arguments",
    "check_precision",
    "default_precision",
    "get_spec",
    "open_backend",
    "open_checked",
    "require_precision",
    "static_image_shape",
]


def get_spec(name: str) -> BackendSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None


def default_precision(name: str) -> str:
    """A backend's default precision, the first it lists: fp32, and fp16 for ascend (ATC's own default)."""
    return get_spec(name).default_precision


def check_precision(name: str, precision: str) -> None:
    """A :class:`UserError` naming the backend's precisions when ``precision`` is not one of them."""
    allowed = get_spec(name).precisions
    if precision not in allowed:
        raise UserError(f"backend {name} has no precision {precision}: it runs {', '.join(allowed)}")


def require_precision(backend: Backend, wanted: str, model: Path) -> None:
    """Stop when the runtime runs another precision than the one asked for (a label must be true)."""
    if backend.inference_precision != wanted:
        raise UserError(
            f"asked for precision {wanted}, but {backend.name} runs {model} at {backend.inference_precision} "
            f"({backend.precision_evidence}): pass --precision {backend.inference_precision}, or the model "
            f"made for {wanted}"
        )


def open_backend(name: str, model: Path, *, precision: str | None = None, threads: int = 0, **options: Any) -> Backend:
    """Load ``model`` for backend ``name`` at ``precision`` (default: the backend's). ``threads`` = 0 lets
    the runtime choose; ``options`` are the backend's CLI flags by argparse name (``model_config``,
    ``input_shape``, ``providers``, ``device``, ``ais_bench``). The backend's ``inference_precision``
    says what actually runs; compare it with ``precision`` (:func:`open_checked` does)."""
    spec = get_spec(name)
    precision = precision or spec.default_precision
    model = Path(model)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist: run the workflow's model rules first")
    check_precision(name, precision)
    return spec.open(model, precision, threads, options)


def add_backend_arguments(parser: ArgumentParser, names: tuple[str, ...] = BACKENDS, *, required: bool = False) -> None:
    """``--backend`` (``required``, or the first of ``names`` by default), ``--precision``, ``--threads``,
    ``--device`` and every listed backend's own flags."""
    parser.add_argument(
        "--backend",
        choices=names,
        required=required,
        default=None if required else names[0],
        help="; ".join(f"{name}: {REGISTRY[name].summary}" for name in names),
    )
    parser.add_argument(
        "--precision",
        choices=sorted({precision for name in names for precision in PRECISIONS[name]}),
        help="what must run (default: the backend's first); "
        + "; ".join(f"{name}: {', '.join(PRECISIONS[name])}" for name in names),
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the runtime (0: its default)")
    parser.add_argument("--device", type=int, default=0, help="accelerator id: the GPU (tensorrt) or NPU (ascend)")
    for name in names:
        add_arguments = REGISTRY[name].add_arguments
        if add_arguments is not None:
            add_arguments(parser)


def open_checked(args: Namespace) -> Backend:
    """``open_backend`` with a stage CLI's flags (those of :func:`add_backend_arguments` and ``--model``),
    stopping unless the runtime computes in the precision asked for."""
    args.precision = args.precision or default_precision(args.backend)
    options = {
        key: value for key, value in vars(args).items() if key not in ("backend", "model", "precision", "threads")
    }
    backend = open_backend(args.backend, args.model, precision=args.precision, threads=args.threads, **options)
    require_precision(backend, args.precision, args.model)
    return backend
