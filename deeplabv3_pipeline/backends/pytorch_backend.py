"""The mmseg model itself in eager PyTorch: the accuracy reference for every other backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..mmseg_model import load_export_model, predict_class_ids


class PyTorchBackend:
    name = "pytorch"

    def __init__(self, checkpoint: Path, model_config: str, input_shape: tuple[int, int], threads: int) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.input_shape = tuple(input_shape)
        self.model = load_export_model(model_config, checkpoint, self.input_shape)

    def run(self, image: np.ndarray) -> np.ndarray:
        return predict_class_ids(self.model, image)
