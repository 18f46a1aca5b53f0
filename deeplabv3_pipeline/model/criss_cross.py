"""CCNet's criss-cross attention in operators every ONNX opset from 11 has.

mmcv 2 writes ``CrissCrossAttention`` in plain PyTorch with ``torch.einsum`` (ONNX opset 12 and later)
and ``torch.diag`` (no opset: the exporter refuses it). Each einsum here is a batched matrix product over
the same axes, written as permute + MatMul, and the -inf diagonal (so that a pixel is not counted twice,
once in its column and once in its row) a constant of the graph. The same sums in another order: equal to
mmcv's up to float rounding (tested against it, and through ONNX Runtime).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def negative_infinity_diagonal(size: int) -> torch.Tensor:
    """mmcv's ``NEG_INF_DIAG``: -inf on the diagonal, 0 elsewhere; built from numpy, so a traced graph holds
    it as a constant rather than as the ops that made it."""
    matrix = np.zeros((size, size), dtype=np.float32)
    np.fill_diagonal(matrix, -np.inf)
    return torch.from_numpy(matrix)


def criss_cross_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``CrissCrossAttention.forward`` without einsum and diag (the einsum each line replaces beside it)."""
    height = int(x.shape[2])
    query, key, value = module.query_conv(x), module.key_conv(x), module.value_conv(x)
    # bchw,bciw->bwhi
    energy_h = torch.matmul(query.permute(0, 3, 2, 1), key.permute(0, 3, 1, 2))
    energy_h = (energy_h + negative_infinity_diagonal(height).to(x.dtype)).transpose(1, 2)  # b h w i
    # bchw,bchj->bhwj
    energy_w = torch.matmul(query.permute(0, 2, 3, 1), key.permute(0, 2, 1, 3))
    attention = nn.functional.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)
    # bciw,bhwi->bchw
    out = torch.matmul(value.permute(0, 3, 1, 2), attention[..., :height].permute(0, 2, 3, 1)).permute(0, 2, 3, 1)
    # bchj,bhwj->bchw
    out = out + torch.matmul(value.permute(0, 2, 1, 3), attention[..., height:].permute(0, 1, 3, 2)).permute(0, 2, 1, 3)
    return (module.gamma(out) + x).contiguous()


class ExportableCrissCross(nn.Module):
    """A ``CrissCrossAttention`` (its weights, shared) computed by :func:`criss_cross_forward`."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original = original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return criss_cross_forward(self.original, x)


def make_criss_cross_exportable(model: nn.Module) -> int:
    """Wrap every mmcv ``CrissCrossAttention`` of ``model`` in :class:`ExportableCrissCross`, in place;
    returns how many there were."""
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child).__name__ == "CrissCrossAttention"
    ]
    for parent, name, child in targets:
        setattr(parent, name, ExportableCrissCross(child))
    return len(targets)
