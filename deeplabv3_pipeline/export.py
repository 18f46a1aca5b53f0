"""The segmentor to ONNX, and the check of the ONNX model against PyTorch (rule verify_onnx).

Export and verification are separate steps: verification does not change the model, so turning
``model.verify`` on or off must not re-export it (nor rerun what is computed from it).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .mmseg_model import SegmentationExport, predict_class_ids
from .pooling import make_adaptive_pooling_exportable


def export_onnx(model: SegmentationExport, output: Path, opset: int) -> None:
    """Trace ``model`` to ONNX with a fixed input shape (TorchScript exporter: dynamo=False), atomically.

    What ONNX cannot express as PyTorch writes it is rewritten exactly first, on a copy (``model`` itself
    stays the reference the check compares with): adaptive average pooling (pooling.py)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.partial")
    exportable = copy.deepcopy(model)
    make_adaptive_pooling_exportable(exportable)
    example = torch.zeros(1, 3, *model.input_shape)
    with torch.inference_mode():
        torch.onnx.export(
            exportable,
            (example,),
            str(temporary),
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    temporary.replace(output)


def disagreement(model: SegmentationExport, onnx_file: Path, seed: int = 0) -> float:
    """Fraction of pixels whose class differs between PyTorch and ONNX Runtime on a random input."""
    import onnxruntime as ort

    from .binio import read_onnx

    read_onnx(onnx_file, external_data=False)  # a damaged file is named, with the command that remakes it
    image = np.random.default_rng(seed).standard_normal((1, 3, *model.input_shape), dtype=np.float32)
    reference = predict_class_ids(model, image)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"input": image})[0]
    if exported.shape != reference.shape or exported.dtype != np.int64:
        raise UserError(f"{onnx_file} gives {exported.dtype} {exported.shape}, expected int64 {reference.shape}")
    return float(np.mean(exported != reference))


def check_agreement(differing: float, tolerance: float, onnx_file: Path) -> None:
    if differing > tolerance:
        raise UserError(
            f"ONNX Runtime and PyTorch disagree on {differing:.4%} of pixels of {onnx_file} (tolerance "
            f"{tolerance:.4%}, model.verify_tolerance): the export is wrong; report it with the model config"
        )
