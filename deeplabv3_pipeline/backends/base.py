"""The interface every backend implements (mmdeploy's backend manager + wrapper split).

A backend subpackage (``backends/<name>/``) holds, in one place:

- its **wrapper**: the opened model, ``run(image) -> class ids`` for one normalised float32 (1,3,H,W)
  image giving int64 (1,1,H,W), and ``infer_files`` for a pass over ``.bin`` files (in-process
  wrappers inherit :class:`FileRunner`'s; TensorRT and Ascend have their own pipelines);
- its **options** (a typed record, :mod:`.options`): what it reads from the config, which are also
  the stage CLIs' flags, each field with its one default;
- its **conversion**, where its model is not the ONNX export itself (int8 quantization, an engine or
  an ``.om`` build), as modules beside the wrapper;
- its **spec** (:class:`BackendSpec`), read from the package's own names (:data:`PACKAGE_NAMES`: its
  ``SUMMARY``, ``PRECISIONS``, ``open_model``, ``model_steps``, its ``Options`` record, ...), the folder
  being its name. The registry (``backends.REGISTRY``) finds the packages; the workflow's config
  check, rules and tool checks and the stage CLIs read it, so adding a backend is adding its subpackage.

Nothing here imports a runtime: the workflow imports every spec at parse time, also where only
some runtimes are installed. Wrappers import theirs when opened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deeplabv3_pipeline.planning.artifacts import Step

from ..errors import UserError
from .files import FileRun, run_files

Config = Mapping[str, Any]
# What a backend can report. "int8": the model's quantized operations run int8 and the rest in float.
INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class Backend(Protocol):
    """An opened model: what every backend's wrapper is. An out-of-process backend (Ascend: ais_bench runs
    whole folders, ``IN_PROCESS = False``) is only this."""

    name: str
    inference_precision: str  # one of INFERENCE_PRECISIONS: what the runtime reports it computes
    precision_evidence: str  # one line: where inference_precision came from

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun: ...


class ImageBackend(Backend, Protocol):
    """An in-process backend's wrapper: it also runs one image of its fixed input size (the benchmark,
    the agreement checks and :class:`FileRunner` use these)."""

    input_shape: tuple[int, int]

    def run(self, image: np.ndarray) -> np.ndarray: ...


class FileRunner:
    """``infer_files`` of a wrapper that computes one image per ``run`` call in this process."""

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        return run_files(self, inputs, output, outfmt, warmup)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NoOptions:
    """The options record of a backend that reads nothing from the config."""


def no_problems(config: Config) -> list[str]:
    return []


def no_steps(precision: str, config: Config) -> list[Step]:
    return []


def no_precision_problems(precision: str, config: Config) -> list[str]:
    return []


def same_config(config: Config) -> Config:
    return config


@dataclass(frozen=True)
class Quantizer:
    """A backend's int8 conversion of the fp32 ONNX model (scripts/quantize_onnx.py ``--quantizer <name>``).

    ``run(source, output, files, input_name, shape, settings)`` writes ``output`` and returns (the nodes
    left in float, how many quantize ops it inserted, notes); ``versions()``: the tools' versions;
    ``mixed(source, output, files, input_name, shape, settings, search)``, where the backend
    has one, its mixed-precision search (deeplabv3_pipeline/optimize/mixed.py): ``run``'s three and the
    search's result.
    """

    run: Callable[..., tuple[list[str], int, list[str]]]
    versions: Callable[[], dict[str, str]]
    mixed: Callable[..., tuple[list[str], int, list[str], Any]] | None = None


class TensorDump(Protocol):
    """A model opened for the per-layer comparison: ``dump(image, sink)`` hands every tensor it computes on
    one image to ``sink(name, value)``, by the ONNX tensor name, as soon as it can let go of it (a name
    given twice: the later value is the tensor's; the sink uses the value before it returns: the runtime
    may write over it after); ``how`` says how the tensors are read; ``streams``: whether it hands each
    tensor on as the network computes it, keeping none (eager PyTorch's hooks), or computes them all
    before it hands any on (a session with extra outputs), which decides which side of a comparison is
    kept while the other streams (scripts/compare_layers.py; deeplabv3_pipeline/evaluation/layers.py);
    ``owned``: whether each value it hands on is a new array that nothing writes over after, which a sink
    may keep without a copy."""

    how: str
    streams: bool
    owned: bool

    def dump(self, image: np.ndarray, sink: Callable[[str, np.ndarray], None]) -> None: ...


@dataclass(frozen=True)
class LayerCompare:
    """A backend's own per-layer comparison, for a backend whose runtime is not here (TensorRT: Polygraphy,
    Ascend: msit ``debug compare``): ``commands(reference, source, model, inputs, folder, input_shape,
    precision, options)`` are the command lines that compare ``model`` (an engine, an ``.om``) built from
    the ONNX model ``source`` with the fp32 ONNX model ``reference`` on the ``.bin`` inputs, writing
    into ``folder``; ``tools``: the programs they need."""

    tools: tuple[str, ...]
    commands: Callable[..., list[list[str]]]


@dataclass(frozen=True)
class BackendSpec:
    """What the workflow and the CLIs need to know of one backend.

    ``precisions``: what it can be asked for, its default first. ``model_steps(precision, config)``: the
    workflow steps that make the model it runs, in order, the last one's output being that model (an
    empty list: it runs the checkpoint itself). ``options``: its options record type (:mod:`.options`),
    read from the config for the workflow's jobs and from the flags of a stage CLI.
    ``open(model, precision, threads, options)``: the wrapper, ``options`` being such a record.
    ``environment_problems(config)``: what is missing to run it here, one sentence each naming the fix,
    checked before any job of a cell of it runs; ``precision_problems(precision, config)``: why the config
    cannot run that precision at all (fp16 of PyTorch on the CPU), checked when the workflow starts, dry
    runs too. ``extra_targets(precision, config)``: steps a run of this backend also makes (an
    ``.om`` per Ascend soc_version). ``in_process``: ``run(image)`` works. ``cpu``: it runs on this
    machine's CPU (the speed benchmark times its variants); ``cpu_precisions``: those it runs there, where
    not all (None: all); ``cpu_config(config)``: the config with this backend on the CPU, where a config key
    may put it elsewhere (what the CPU benchmark and the per-layer comparison run). ``winograd``: it runs
    an fp32 ONNX graph, so its ``-fp32-winograd`` variant runs rule winograd_onnx's rewrite of it. ``mixed_precisions``:
    the precisions that have a ``-<precision>-mixed`` variant, whose model ``mixed_steps(precision,
    config)`` make (the fewest layers kept in float for the config's target:
    deeplabv3_pipeline/optimize/mixed.py). ``quantizer``: its int8
    conversion, where it has one of its own. ``tensors(model, precision, threads, options, graph)``: its
    model opened for the per-layer comparison (a :class:`TensorDump`, tensors named as in the ONNX file
    ``graph``), where it runs here; ``layer_compare``: the commands of its own tool for that, where not.
    """

    name: str
    summary: str
    precisions: tuple[str, ...]
    open: Callable[[Path, str, int, Any], Backend]
    model_steps: Callable[[str, Config], list[Step]]
    options: type = NoOptions
    environment_problems: Callable[[Config], list[str]] = no_problems
    precision_problems: Callable[[str, Config], list[str]] = no_precision_problems
    extra_targets: Callable[[str, Config], list[Step]] = no_steps
    in_process: bool = True
    cpu: bool = True
    cpu_precisions: tuple[str, ...] | None = None
    cpu_config: Callable[[Config], Config] = same_config
    winograd: bool = False
    mixed_precisions: tuple[str, ...] = ()
    mixed_steps: Callable[[str, Config], list[Step]] = no_steps
    quantizer: Quantizer | None = None
    tensors: Callable[[Path, str, int, Any, Path], TensorDump] | None = None
    layer_compare: LayerCompare | None = None

    @classmethod
    def from_package(cls, name: str, package: object) -> BackendSpec:
        """The spec of backend subpackage ``name``: each field from the package's name for it
        (:data:`PACKAGE_NAMES`); the ones without a default must be there."""
        values: dict[str, Any] = {"name": name}
        missing = []
        for spec_field in dataclasses.fields(cls):
            if spec_field.name == "name":
                continue
            attribute = PACKAGE_NAMES[spec_field.name]
            if hasattr(package, attribute):
                values[spec_field.name] = getattr(package, attribute)
            elif spec_field.default is dataclasses.MISSING:
                missing.append(attribute)
        if missing:
            raise UserError(f"backend package {name} ({getattr(package, '__file__', '?')}) lacks {', '.join(missing)}")
        return cls(**values)

    @property
    def default_precision(self) -> str:
        return self.precisions[0]

    def runs_on_cpu(self, precision: str) -> bool:
        """Whether it runs ``precision`` on this machine's CPU (the CPU benchmark times that variant)."""
        return self.cpu and (self.cpu_precisions is None or precision in self.cpu_precisions)

    def other_precisions(self, precision: str) -> tuple[str, ...]:
        """Its precisions besides ``precision``: what to suggest when that one cannot run."""
        return tuple(other for other in self.precisions if other != precision)


# BackendSpec field -> the name a backend subpackage gives it
PACKAGE_NAMES = {
    "summary": "SUMMARY",
    "precisions": "PRECISIONS",
    "open": "open_model",
    "model_steps": "model_steps",
    "options": "Options",
    "environment_problems": "environment_problems",
    "precision_problems": "precision_problems",
    "extra_targets": "extra_targets",
    "in_process": "IN_PROCESS",
    "cpu": "RUNS_ON_CPU",
    "cpu_precisions": "CPU_PRECISIONS",
    "cpu_config": "cpu_config",
    "winograd": "WINOGRAD",
    "mixed_precisions": "MIXED_PRECISIONS",
    "mixed_steps": "mixed_model_steps",
    "quantizer": "QUANTIZER",
    "tensors": "open_tensors",
    "layer_compare": "LAYER_COMPARE",
}


def static_image_shape(shape: list, source: Path) -> tuple[int, int]:
    """(H, W) of a model input declared as (1, 3, H, W) with fixed sizes."""
    if len(shape) != 4 or not all(isinstance(size, int) for size in shape[2:]):
        raise UserError(f"model {source} input shape {shape} is not a fixed (1,3,H,W): export it with a fixed shape")
    return int(shape[2]), int(shape[3])


def require_option(options: Any, key: str, backend: str, why: str) -> Any:
    """Field ``key`` of an options record, or a :class:`UserError` naming the flag ``--key`` it needs."""
    value = getattr(options, key)
    if value is None:
        raise UserError(f"the {backend} backend needs --{key.replace('_', '-')} ({why})")
    return value
