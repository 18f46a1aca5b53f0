"""The segmentor to ONNX, and the check of the ONNX model against PyTorch (rule verify_onnx).

Export and verification are separate steps: verification does not change the model, so turning
``model.verify`` on or off must not re-export it (nor rerun what is computed from it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import atomic_path
from deeplabv3_pipeline.model.criss_cross import make_criss_cross_exportable
from deeplabv3_pipeline.model.mmseg_model import SegmentationExport
from deeplabv3_pipeline.model.pooling import exact_functional_pooling, make_adaptive_pooling_exportable


def export_onnx(model: SegmentationExport, output: Path, opset: int) -> None:
    """Trace ``model`` to ONNX with a fixed input shape (TorchScript exporter: dynamo=False), atomically.

    What ONNX cannot express as PyTorch writes it is rewritten exactly first, on a copy (``model`` itself
    stays the reference the check compares with): adaptive average pooling (pooling.py), the module and
    the function; CCNet's criss-cross attention (criss_cross.py: no einsum or diag)."""
    exportable = copy.deepcopy(model)
    make_adaptive_pooling_exportable(exportable)
    make_criss_cross_exportable(exportable)
    example = torch.zeros(1, 3, *model.input_shape)
    with torch.inference_mode(), exact_functional_pooling(), atomic_path(output) as temporary:
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


# Pixels whose two best classes' logits are closer than this share of the largest logit are near-ties:
# float rounding alone (ONNX Runtime's kernels against PyTorch's) may flip them, most often with
# random weights. A wrong export moves logits by far more, so it shows at the decisive pixels.
NEAR_TIE_MARGIN = 1e-3


@dataclass(frozen=True)
class Disagreement:
    differing: float  # share of all pixels whose class differs
    decisive_differing: float  # share of all pixels that differ while not near-ties: what is checked
    near_ties: float  # share of pixels that are near-ties in PyTorch's logits


def disagreement(model: SegmentationExport, onnx_file: Path, seed: int = 0) -> Disagreement:
    """How the classes of ONNX Runtime and PyTorch differ on a random input (see NEAR_TIE_MARGIN)."""
    import onnxruntime as ort

    from deeplabv3_pipeline.io.binio import read_onnx

    read_onnx(onnx_file, external_data=False)  # a damaged file is named, with the command that remakes it
    image = np.random.default_rng(seed).standard_normal((1, 3, *model.input_shape), dtype=np.float32)
    with torch.inference_mode():
        logits = model.logits(torch.from_numpy(image))
    reference = logits.argmax(dim=1, keepdim=True).numpy()
    top2 = torch.topk(logits, 2, dim=1).values
    margin = (top2[:, 0] - top2[:, 1]).unsqueeze(1).numpy()
    near_tie = margin < NEAR_TIE_MARGIN * max(1.0, float(logits.abs().max()))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"input": image})[0]
    if exported.shape != reference.shape or exported.dtype != np.int64:
        raise UserError(f"{onnx_file} gives {exported.dtype} {exported.shape}, expected int64 {reference.shape}")
    differs = exported != reference
    return Disagreement(
        differing=float(np.mean(differs)),
        decisive_differing=float(np.mean(differs & ~near_tie)),
        near_ties=float(np.mean(near_tie)),
    )


def check_agreement(found: Disagreement, tolerance: float, onnx_file: Path) -> None:
    """Stop when more than ``tolerance`` of the pixels differ where PyTorch's choice is not a near-tie."""
    if found.decisive_differing > tolerance:
        raise UserError(
            f"ONNX Runtime and PyTorch disagree on {found.decisive_differing:.4%} of pixels of {onnx_file} "
            f"(not counting near-ties; tolerance "
            f"{tolerance:.4%}, model.verify_tolerance): the export is wrong; report it with the model config"
        )
