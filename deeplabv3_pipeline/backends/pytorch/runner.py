"""The mmseg model itself in eager PyTorch: the accuracy reference for every other backend.

fp32 by default; bf16 runs the same model under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(convolutions and matmuls in bf16), only on a CPU with native BF16, where it is worth running.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions

from ...cpu import require_bf16
from ..base import FileRunner

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
        self,
        checkpoint: Path,
        model_config: str,
        input_shape: tuple[int, int],
        threads: int,
        precision: str = "fp32",
        mode_options: InferenceModeOptions | None = None,
    ) -> None:
        import torch

        from deeplabv3_pipeline.model.mmseg_model import load_export_model, predict_class_ids

        if precision == "bf16":
            require_bf16("precision bf16 (pytorch)", instead=tuple(other for other in PRECISIONS if other != "bf16"))
        if threads:
            torch.set_num_threads(threads)
        self.input_shape = tuple(input_shape)
        self.model = load_export_model(model_config, checkpoint, self.input_shape, mode_options)
        self.autocast = precision == "bf16"
        self.predict = predict_class_ids
        self.bf16_context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        self.inference_precision = "bf16" if self.autocast else "fp32"
        how = 'under torch.autocast("cpu", dtype=torch.bfloat16)' if self.autocast else "without autocast"
        self.precision_evidence = (
            f"PyTorch {torch.__version__} eager {how}; {float32_settings()}; test mode {self.model.mode.describe()}"
        )

    def run(self, image: np.ndarray) -> np.ndarray:
        with self.bf16_context() if self.autocast else contextlib.nullcontext():
            return self.predict(self.model, image)
