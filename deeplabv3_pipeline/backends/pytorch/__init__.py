"""The mmseg model itself in PyTorch: on the CPU (:mod:`.runner`), the accuracy reference for every other
backend; on an NVIDIA GPU (:mod:`.cuda`, config ``pytorch.device: cuda``), mmseg's own GPU path in fp32,
fp16 or bf16. It runs the checkpoint: no conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions
from deeplabv3_pipeline.options import option
from deeplabv3_pipeline.planning.artifacts import Step

from ...devices import device_problems, parse_device
from ...errors import UserError
from ..base import Config, require_option
from .cuda import PyTorchCudaBackend, precision_problem
from .runner import CPU_PRECISIONS as CPU_PRECISIONS  # the registry reads them here
from .runner import PRECISIONS as PRECISIONS
from .runner import PyTorchBackend
from .tensors import PyTorchTensors


def model_steps(precision: str, config: Config) -> list[Step]:
    return []  # the checkpoint itself


SUMMARY = "the mmseg model in PyTorch on the CPU (the accuracy reference) or on an NVIDIA GPU (pytorch.device)"


@dataclass(frozen=True)
class Options(InferenceModeOptions):
    """The model's own mmseg config, input size and test mode: the checkpoint holds weights only."""

    model_config: str | None = option(None, "mmseg config name or file", config="model.config")
    input_shape: tuple[int, int] | None = option(
        None, "input height and width", config="model.input_shape", metavar=("H", "W")
    )
    torch_device: str = option("cpu", "where PyTorch runs: cpu, cuda or cuda:<index>", config="pytorch.device")
    compile: bool = option(
        False, "compile the model with torch.compile (inductor) when opened", config="pytorch.compile"
    )


def environment_problems(config: Config) -> list[str]:
    """A GPU where pytorch.device names one (checked before any job of a pytorch cell runs)."""
    return device_problems(config["pytorch"]["device"])


def cpu_config(config: Config) -> dict:
    """The config with PyTorch on the CPU whatever pytorch.device says (the CPU benchmark times this CPU; the
    per-layer comparison's reference is the CPU's fp32)."""
    return {**config, "pytorch": {**config["pytorch"], "device": "cpu"}}


def precision_problems(precision: str, config: Config) -> list[str]:
    """fp16 asked of the CPU (checked when the workflow starts, dry runs too)."""
    problem = precision_problem(precision, config["pytorch"]["device"])
    return [problem] if problem else []


def open_model(model: Path, precision: str, threads: int, options: Options) -> PyTorchBackend | PyTorchCudaBackend:
    why = "the checkpoint holds weights only"
    model_config = require_option(options, "model_config", "pytorch", why)
    input_shape = require_option(options, "input_shape", "pytorch", why)
    mode = InferenceModeOptions(options.test_mode, options.crop_size, options.stride, options.test_shape)
    kind, _ = parse_device(options.torch_device, "--torch-device")
    if kind == "cpu":
        return PyTorchBackend(
            model, model_config, input_shape, threads, precision, mode_options=mode, compile=options.compile
        )
    problems = device_problems(options.torch_device, key="--torch-device")
    if problems:
        raise UserError("the pytorch backend cannot run here: " + "; ".join(problems))
    from deeplabv3_pipeline.model.mmseg_model import load_export_model

    loaded = load_export_model(model_config, model, tuple(input_shape), mode)
    return PyTorchCudaBackend(loaded, options.torch_device, precision, compile=options.compile)


def open_tensors(model: Path, precision: str, threads: int, options: Options, graph: Path) -> PyTorchTensors:
    """Every module's output, named by the ONNX export ``graph``'s scopes (:mod:`.tensors`)."""
    return PyTorchTensors(model, precision, threads, options, graph)
