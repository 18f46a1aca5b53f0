"""A test-only backend, outside the package, found through ``$DEEPLABV3_BACKEND_PATH``
(tests/workflow/test_backends.py): what adding a backend takes. In the tree it would be this subpackage under
``deeplabv3_pipeline/backends/`` plus its row in the README's precision table; nothing else.

It predicts one class everywhere (class 0, road), reading the model's input size from ``model.input_shape``
through its options record, and runs the checkpoint (no conversion step): a real cell with real (poor)
figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.backends.base import Config, FileRunner, require_option
from deeplabv3_pipeline.options import option

SUMMARY = "test-only: class 0 everywhere"
PRECISIONS = ("fp32",)


class ConstantBackend(FileRunner):
    name = "constant"
    inference_precision = "fp32"
    precision_evidence = "test-only backend: class 0 everywhere"

    def __init__(self, input_shape: tuple[int, int]) -> None:
        self.input_shape = input_shape

    def run(self, image: np.ndarray) -> np.ndarray:
        return np.zeros((1, 1, *image.shape[2:]), dtype=np.int64)


@dataclass(frozen=True)
class Options:
    input_shape: tuple[int, int] | None = option(
        None, "input height and width", config="model.input_shape", metavar=("H", "W")
    )


def model_steps(precision: str, config: Config) -> list:
    return []  # "runs" the checkpoint


def open_model(model: Path, precision: str, threads: int, options: Options) -> ConstantBackend:
    return ConstantBackend(require_option(options, "input_shape", "constant", "it reads no model"))
