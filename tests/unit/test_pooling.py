"""Adaptive average pooling exported exactly: against PyTorch on bins that do not divide the map (where
mmdeploy's floor-kernel AveragePool differs), through ONNX Runtime, and PSPNet end to end."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplabv3_pipeline.model.export import export_onnx
from deeplabv3_pipeline.model.mmseg_model import SegmentationExport
from deeplabv3_pipeline.model.pooling import (
    ExactAdaptiveAvgPool2d,
    averaging_matrix,
    exact_functional_pooling,
    make_adaptive_pooling_exportable,
)

# (map H, W, bins): PSPNet's pyramid on a 64x128 input's 1/8 map (8x16), odd sizes, one axis kept.
CASES = [(8, 16, 3), (8, 16, 6), (13, 17, (6, 4)), (16, 32, 6), (7, 9, (None, 2)), (8, 16, 2)]


def floor_kernel_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """mmdeploy's approximation: one AveragePool with kernel = stride = floor(in / out)."""
    kernel = (x.shape[-2] // bins, x.shape[-1] // bins)
    return F.avg_pool2d(x, kernel, kernel)[..., :bins, :bins]


def test_averaging_matrix_rows_are_pytorchs_bins():
    matrix = averaging_matrix(8, 3)  # bins [0, 3), [2, 6), [5, 8)
    expected = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]])
    assert torch.allclose(matrix, expected / expected.sum(1, keepdim=True))


@pytest.mark.parametrize(("height", "width", "bins"), CASES)
def test_exact_pooling_equals_pytorch_and_its_onnx_export_too(tmp_path, height, width, bins):
    x = torch.randn(2, 5, height, width, generator=torch.Generator().manual_seed(height * width))
    reference = nn.AdaptiveAvgPool2d(bins)(x)
    exact = ExactAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d(bins))
    torch.testing.assert_close(exact(x), reference, rtol=1e-6, atol=1e-6)
    path = tmp_path / "pool.onnx"
    torch.onnx.export(exact, (x,), str(path), input_names=["x"], opset_version=11, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(exported, reference.numpy(), rtol=1e-5, atol=1e-6)


class FunctionalPool(nn.Module):
    """A head that calls the function, as APCNet's and DMNet's do, not the module."""

    def __init__(self, bins: int | tuple) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, self.bins)


@pytest.mark.parametrize(("height", "width", "bins"), CASES[:3])
def test_the_function_exports_exactly_within_exact_functional_pooling(tmp_path, height, width, bins):
    x = torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(height + width))
    reference = nn.AdaptiveAvgPool2d(bins)(x)
    path = tmp_path / "functional.onnx"
    with exact_functional_pooling():
        torch.testing.assert_close(FunctionalPool(bins)(x), reference, rtol=1e-6, atol=1e-6)
        torch.onnx.export(FunctionalPool(bins), (x,), str(path), input_names=["x"], opset_version=11, dynamo=False)
    assert (
        F.adaptive_avg_pool2d is torch.nn.functional.adaptive_avg_pool2d
        and "exact" not in F.adaptive_avg_pool2d.__name__
    )
    exported = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(exported, reference.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="adaptive_avg_pool2d"):  # without it the exporter refuses these bins
        torch.onnx.export(FunctionalPool(bins), (x,), str(tmp_path / "naive.onnx"), opset_version=11, dynamo=False)


def test_the_cases_tell_exact_from_the_floor_kernel_approximation():
    """On bins that do not divide the map the naive export differs, so the test above can fail."""
    x = torch.randn(1, 4, 8, 16, generator=torch.Generator().manual_seed(0))
    for bins in (3, 6):
        assert not torch.allclose(floor_kernel_pool(x, bins), nn.AdaptiveAvgPool2d(bins)(x), atol=1e-3)
    assert torch.allclose(floor_kernel_pool(x, 2), nn.AdaptiveAvgPool2d(2)(x))  # dividing bins: the same


def test_make_exportable_wraps_every_adaptive_pool_and_keeps_the_results():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten()))
    x = torch.randn(1, 3, 8, 16)
    before = model(x)
    assert make_adaptive_pooling_exportable(model) == 1
    assert isinstance(model[1][0], ExactAdaptiveAvgPool2d)
    torch.testing.assert_close(model(x), before)


class Logits(SegmentationExport):
    """The export's graph up to the resized logits (before argmax): what float rounding alone may move."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(image)


@pytest.mark.slow
def test_pspnet_exports_and_its_logits_equal_pytorchs(tmp_path):
    """PSPNet R50-D8 (pyramid bins 1, 2, 3, 6 on an 8x16 map) at 64x128, a random checkpoint in the real
    format: the export runs, and its logits are PyTorch's up to float rounding."""
    from deeplabv3_pipeline.model.mmseg_model import load_export_model, make_random_checkpoint

    config = "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024"
    checkpoint = make_random_checkpoint(config, tmp_path / "pspnet.pth", seed=2)
    model = load_export_model(config, checkpoint, (64, 128))
    logits_model = Logits(model.segmentor, model.input_shape).eval()
    onnx_file = tmp_path / "pspnet_logits.onnx"
    export_onnx(logits_model, onnx_file, 11)
    image = np.random.default_rng(0).standard_normal((1, 3, 64, 128), dtype=np.float32)
    with torch.inference_mode():
        reference = logits_model(torch.from_numpy(image)).numpy()
    exported = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"input": image})[0]
    assert np.abs(exported - reference).max() <= 1e-4 * np.abs(reference).max()
