"""The backends, one subpackage each (``backends/<name>/``), found and listed in :data:`REGISTRY`.

Every backend takes a normalised float32 (1,3,H,W) image and returns int64 (1,1,H,W) class ids, the
layout of the exported ONNX model, and writes ``{stem}_0.bin`` per input (ais_bench's layout) through
its ``infer_files``. The interface is in :mod:`.base`; the workflow (schema check, rules, tool checks),
``infer.py`` and the benchmark read this registry, so adding a backend means adding its subpackage:
every subpackage of this folder that defines ``open_model`` is one, found when this module loads, and
so is every subpackage of the folders in ``$DEEPLABV3_BACKEND_PATH`` (``os.pathsep``-separated:
backends kept outside this tree, imported as ``deeplabv3_pipeline.backends.<name>``; a name taken
twice is an error).

Precision is asked for explicitly and each backend reports what its runtime says it computes
(``inference_precision``, with ``precision_evidence``): a runtime's default is not always fp32 (OpenVINO
picks bf16 on CPUs with native BF16). Where the model cannot give the precision asked for (int8 asked
of an fp32 model) the reported value differs from the request, and :func:`require_precision` stops.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.options import add_option_arguments, from_config, from_namespace, to_flags

from ..errors import UserError
from .base import INFERENCE_PRECISIONS, Backend, BackendSpec, Config, static_image_shape

PATH_VARIABLE = "DEEPLABV3_BACKEND_PATH"
__path__ = [*__path__, *filter(None, os.environ.get(PATH_VARIABLE, "").split(os.pathsep))]


def discover() -> dict[str, BackendSpec]:
    """The spec of every backend subpackage (one that defines ``open_model``), by name, in name order."""
    folders: dict[str, str] = {}  # subpackage name -> the folder holding it
    for folder in __path__:
        for found in pkgutil.iter_modules([folder]):
            if not found.ispkg:
                continue
            if found.name in folders:  # the import would silently take the first one
                raise UserError(
                    f"two backend folders are named {found.name}, in {folders[found.name]} and {folder} "
                    f"(${PATH_VARIABLE}): rename one"
                )
            folders[found.name] = folder
    specs = {}
    for name in sorted(folders):
        package = importlib.import_module(f"{__name__}.{name}")
        if hasattr(package, "open_model"):
            specs[name] = BackendSpec.from_package(name, package)
    return specs


REGISTRY: dict[str, BackendSpec] = discover()
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
    "backend_flags",
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
    the runtime choose; ``options`` are fields of the backend's options record (``model_config``,
    ``input_shape``, ``providers``, ``device``, ``ais_bench``), the others keep their defaults. The
    backend's ``inference_precision`` says what actually runs; compare it with ``precision``
    (:func:`open_checked` does)."""
    spec = get_spec(name)
    precision = precision or spec.default_precision
    model = Path(model)
    if not model.is_file():
        raise UserError(f"model file {model} does not exist: run the workflow's model rules first")
    check_precision(name, precision)
    known = {field.name for field in dataclasses.fields(spec.options)}
    unknown = sorted(set(options) - known)
    if unknown:
        have = ", ".join(sorted(known)) or "none"
        raise UserError(f"backend {name} has no option {', '.join(unknown)}: it has {have}")
    return spec.open(model, precision, threads, spec.options(**options))


def backend_flags(name: str, config: Config) -> list[str]:
    """The flags of ``infer.py`` that give backend ``name`` its options from the workflow's config."""
    return to_flags(from_config(get_spec(name).options, config))


def add_backend_arguments(
    parser: ArgumentParser, names: tuple[str, ...] = BACKENDS, *, default: str | None = None
) -> None:
    """``--backend`` (required unless a ``default`` is given), ``--precision``, ``--threads`` and the flags
    of every listed backend's options record."""
    parser.add_argument(
        "--backend",
        choices=names,
        required=default is None,
        default=default,
        help="; ".join(f"{name}: {REGISTRY[name].summary}" for name in names),
    )
    parser.add_argument(
        "--precision",
        choices=sorted({precision for name in names for precision in PRECISIONS[name]}),
        help="what must run (default: the backend's first); "
        + "; ".join(f"{name}: {', '.join(PRECISIONS[name])}" for name in names),
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the runtime (0: its default)")
    for name in names:
        add_option_arguments(parser, REGISTRY[name].options, name)


def open_checked(args: Namespace) -> Backend:
    """``open_backend`` with a stage CLI's flags (those of :func:`add_backend_arguments` and ``--model``),
    stopping unless the runtime computes in the precision asked for."""
    args.precision = args.precision or default_precision(args.backend)
    options = dataclasses.asdict(from_namespace(get_spec(args.backend).options, args))
    backend = open_backend(args.backend, args.model, precision=args.precision, threads=args.threads, **options)
    require_precision(backend, args.precision, args.model)
    return backend
