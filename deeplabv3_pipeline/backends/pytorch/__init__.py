"""The mmseg model itself in eager PyTorch (:mod:`.runner`): the accuracy reference for every other
backend. It runs the checkpoint: no conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions
from deeplabv3_pipeline.options import option
from deeplabv3_pipeline.planning.artifacts import Step

from ..base import Config, require_option
from .runner import PRECISIONS as PRECISIONS  # the registry reads it here
from .runner import PyTorchBackend
from .tensors import PyTorchTensors


def model_steps(precision: str, config: Config) -> list[Step]:
    return []  # the checkpoint itself


SUMMARY = "the mmseg model in eager PyTorch on the CPU: the accuracy reference"


@dataclass(frozen=True)
class Options(InferenceModeOptions):
    """The model's own mmseg config, input size and test mode: the checkpoint holds weights only."""

    model_config: str | None = option(None, "mmseg config name or file", config="model.config")
    input_shape: tuple[int, int] | None = option(
        None, "input height and width", config="model.input_shape", metavar=("H", "W")
    )


def open_model(model: Path, precision: str, threads: int, options: Options) -> PyTorchBackend:
    why = "the checkpoint holds weights only"
    model_config = require_option(options, "model_config", "pytorch", why)
    input_shape = require_option(options, "input_shape", "pytorch", why)
    mode = InferenceModeOptions(options.test_mode, options.crop_size, options.stride, options.test_shape)
    return PyTorchBackend(model, model_config, input_shape, threads=threads, precision=precision, mode_options=mode)


def open_tensors(model: Path, precision: str, threads: int, options: Options, graph: Path) -> PyTorchTensors:
    """Every module's output, named by the ONNX export ``graph``'s scopes (:mod:`.tensors`)."""
    return PyTorchTensors(model, precision, threads, options, graph)
