"""The mmseg model itself in eager PyTorch: the accuracy reference for every other backend.

fp32 by default; bf16 runs the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(convolutions and matmuls in bf16), only on a CPU with native BF16, where it is worth running.
"""

from __future__ import annotations

import contextlib
from argparse import ArgumentParser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import Step
from ..cpu import require_bf16
from .base import BackendSpec, Config, FileRunner, require_option

PRECISIONS = ("fp32", "bf16")


def float32_settings() -> str:
    """torch's process-wide knobs that may let fp32 matmuls/convs run in lower precision ('highest'/'none': no)."""
    import torch

    settings = [f"float32_matmul_precision={torch.get_float32_matmul_precision()}"]
    conv = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", None)  # torch >= 2.9
    if conv is not None:
        settings.append(f"mkldnn conv fp32_precision={conv}")
    return ", ".join(settings)


class PyTorchBackend(FileRunner):
    name = "pytorch"

    def __init__(
        self, checkpoint: Path, model_config: str, input_shape: tuple[int, int], threads: int, precision: str = "fp32"
    ) -> None:
        import torch

        from ..mmseg_model import load_export_model, predict_class_ids

        if precision == "bf16":
            require_bf16("precision bf16 (pytorch)", instead=SPEC.other_precisions("bf16"))
        if threads:
            torch.set_num_threads(threads)
        self.input_shape = tuple(input_shape)
        self.model = load_export_model(model_config, checkpoint, self.input_shape)
        self.autocast = precision == "bf16"
        self.predict = predict_class_ids
        self.bf16_context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        self.inference_precision = "bf16" if self.autocast else "fp32"
        how = 'under torch.autocast("cpu", dtype=torch.bfloat16)' if self.autocast else "without autocast"
        self.precision_evidence = f"PyTorch {torch.__version__} eager {how}; {float32_settings()}"

    def run(self, image: np.ndarray) -> np.ndarray:
        with self.bf16_context() if self.autocast else contextlib.nullcontext():
            return self.predict(self.model, image)


def model_steps(precision: str, config: Config) -> list[Step]:
    return []  # the checkpoint itself


def infer_args(config: Config) -> list[str]:
    height, width = config["model"]["input_shape"]
    return ["--model-config", config["model"]["config"], "--input-shape", str(height), str(width)]


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--model-config", help="mmseg config name or file (pytorch)")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("H", "W"), help="input height and width (pytorch)")


def open_model(model: Path, precision: str, threads: int, options: Mapping[str, Any]) -> PyTorchBackend:
    why = "the checkpoint holds weights only"
    model_config = require_option(options, "model_config", "pytorch", why)
    input_shape = tuple(require_option(options, "input_shape", "pytorch", why))
    return PyTorchBackend(model, model_config, input_shape, threads=threads, precision=precision)  # type: ignore[arg-type]


SPEC = BackendSpec(
    name="pytorch",
    summary="the mmseg model in eager PyTorch on the CPU: the accuracy reference",
    precisions=PRECISIONS,
    open=open_model,
    model_steps=model_steps,
    infer_args=infer_args,
    add_arguments=add_arguments,
)
