"""Adaptive average pooling that exports to ONNX exactly, for any input and output size.

ONNX has no adaptive pooling: PyTorch's exporter refuses ``adaptive_avg_pool2d`` when the output size
does not divide the input size (PSPNet's pyramid bins 1, 2, 3, 6 on a 64x128 map: 3 and 6 do not
divide 8), and mmdeploy's rewrite uses one AveragePool with kernel = stride = floor(in / out), which
shifts the windows whenever the bins do not divide the map. Adaptive pooling is linear, and separable:
bin ``i`` of an axis of length ``n`` into ``m`` bins averages ``[floor(i n / m), ceil((i + 1) n / m))``.
So it is ``A_h @ x @ A_w^T`` with one averaging matrix per axis, two MatMuls in the graph: exact up to
float rounding. Where the bins divide the map, PyTorch's own op is kept (it exports as AveragePool).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn


def averaging_matrix(size: int, bins: int) -> torch.Tensor:
    """``(bins, size)``: row ``i`` averages the positions of adaptive pooling's bin ``i`` (PyTorch's bounds)."""
    matrix = torch.zeros(bins, size)
    for index in range(bins):
        start = (index * size) // bins
        end = math.ceil((index + 1) * size / bins)
        matrix[index, start:end] = 1.0 / (end - start)
    return matrix


def output_size(module: nn.AdaptiveAvgPool2d, height: int, width: int) -> tuple[int, int]:
    """The module's (bins_h, bins_w); None in its output size keeps that axis."""
    size = module.output_size
    bins = (size, size) if isinstance(size, int) else tuple(size)
    return (bins[0] or height, bins[1] or width)


def exact_adaptive_avg_pool2d(x: torch.Tensor, size: int | tuple[int | None, int | None]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` as two MatMuls where the bins do not divide the map (see the module doc)."""
    # The export traces one fixed input shape: the sizes are constants of the graph.
    height, width = (int(side) for side in x.shape[-2:])
    bins = (size, size) if isinstance(size, int) else tuple(size)
    bins_h, bins_w = bins[0] or height, bins[1] or width
    if height % bins_h == 0 and width % bins_w == 0:
        return _TORCH_ADAPTIVE_AVG_POOL2D(x, (bins_h, bins_w))
    rows = averaging_matrix(height, bins_h).to(x.dtype)
    columns = averaging_matrix(width, bins_w).to(x.dtype)
    return torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1))


_TORCH_ADAPTIVE_AVG_POOL2D = nn.functional.adaptive_avg_pool2d


@contextlib.contextmanager
def exact_functional_pooling() -> Iterator[None]:
    """Within it, ``torch.nn.functional.adaptive_avg_pool2d`` is :func:`exact_adaptive_avg_pool2d`: the
    heads that call the function, not the module (APCNet, DMNet), export exactly too. For an export only:
    it changes the function for the whole process while it lasts."""
    nn.functional.adaptive_avg_pool2d = exact_adaptive_avg_pool2d
    try:
        yield
    finally:
        nn.functional.adaptive_avg_pool2d = _TORCH_ADAPTIVE_AVG_POOL2D


class ExactAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` whose export is exact for every shape (see the module doc)."""

    def __init__(self, original: nn.AdaptiveAvgPool2d) -> None:
        super().__init__()
        self.original = original

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # plain ints, not the traced sizes: the graph's averaging matrices are constants
        height, width = (int(side) for side in x.shape[-2:])
        return exact_adaptive_avg_pool2d(x, output_size(self.original, height, width))


def make_adaptive_pooling_exportable(model: nn.Module) -> int:
    """Wrap every ``nn.AdaptiveAvgPool2d`` of ``model`` in :class:`ExactAdaptiveAvgPool2d`, in place;
    returns how many there were. PyTorch's results are unchanged (up to float rounding)."""
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.AdaptiveAvgPool2d)
    ]
    for parent, name, child in targets:
        setattr(parent, name, ExactAdaptiveAvgPool2d(child))
    return len(targets)
