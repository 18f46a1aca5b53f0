"""The mmseg model itself in PyTorch on the CPU: the accuracy reference for every other backend.

fp32 by default; bf16 runs the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(convolutions and matmuls in bf16), only on a CPU with native BF16, where it is worth running. fp16
runs on an NVIDIA GPU only (:mod:`.cuda`). ``compile``: the model compiled by ``torch.compile``
(inductor) when opened, its compile time recorded apart.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions

from ...cpu import require_bf16
from ...errors import UserError
from ..base import FileRunner
from ..files import FileRun
from .cuda import CUDA_PRECISIONS, compile_first_call, precision_problem

PRECISIONS = CUDA_PRECISIONS  # (fp16: on CUDA only)
CPU_PRECISIONS = ("fp32", "bf16")


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
        self,
        checkpoint: Path,
        model_config: str,
        input_shape: tuple[int, int],
        threads: int,
        precision: str = "fp32",
        mode_options: InferenceModeOptions | None = None,
        compile: bool = False,
    ) -> None:
        import torch

        from deeplabv3_pipeline.model.mmseg_model import load_export_model, predict_class_ids

        problem = precision_problem(precision, "cpu")
        if problem:
            raise UserError(problem)
        if precision == "bf16":
            require_bf16("precision bf16 (pytorch)", instead=("fp32",))
        if threads:
            torch.set_num_threads(threads)
        self.input_shape = tuple(input_shape)
        self.model = load_export_model(model_config, checkpoint, self.input_shape, mode_options)
        self.autocast = precision == "bf16"
        self.predict = predict_class_ids
        self.graph = torch.compile(self.model, dynamic=False) if compile else self.model
        self.bf16_context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        self.inference_precision = "bf16" if self.autocast else "fp32"
        self.compile_s = compile_first_call(self.run, self.input_shape) if compile else None
        how = 'under torch.autocast("cpu", dtype=torch.bfloat16)' if self.autocast else "without autocast"
        self.precision_evidence = (
            f"PyTorch {torch.__version__} {'compiled by torch.compile (inductor)' if compile else 'eager'} on the "
            f"CPU {how}; {float32_settings()}; test mode {self.model.mode.describe()}"
        )

    def run(self, image: np.ndarray) -> np.ndarray:
        with self.bf16_context() if self.autocast else contextlib.nullcontext():
            return self.predict(self.graph, image)

    def infer_files(self, inputs: list[Path], output: Path, outfmt: str, warmup: int) -> FileRun:
        run = super().infer_files(inputs, output, outfmt, warmup)
        if self.compile_s is not None:
            run.extra["compile_s"] = self.compile_s
        return run
