"""CCNet's criss-cross attention without einsum and diag (deeplabv3_pipeline/model/criss_cross.py): equal to
mmcv's, exported at opset 11 (which mmcv's cannot be) and equal through ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from deeplabv3_pipeline.model.criss_cross import ExportableCrissCross, make_criss_cross_exportable
from deeplabv3_pipeline.model.mmseg_model import install_mmcv_ext_stand_in


@pytest.fixture(scope="module")
def attention() -> nn.Module:
    install_mmcv_ext_stand_in()
    from mmcv.ops import CrissCrossAttention

    torch.manual_seed(0)
    module = CrissCrossAttention(16).eval()
    module.gamma.scale.data.fill_(0.7)  # 0 at init would hide the attention behind the residual
    return module


@pytest.mark.parametrize(("height", "width"), [(5, 7), (8, 8)])
def test_equals_mmcv_and_exports_at_opset_11(attention, tmp_path, height, width):
    x = torch.randn(2, 16, height, width, generator=torch.Generator().manual_seed(height))
    with torch.inference_mode():
        reference = attention(x)
        ours = ExportableCrissCross(attention)(x)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    assert (reference - x).abs().max() > 0.1  # the attention moves the output: the comparison means something
    path = tmp_path / "cca.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            ExportableCrissCross(attention), (x,), str(path), input_names=["x"], opset_version=11, dynamo=False
        )
    exported = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(exported, reference.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="einsum"), torch.inference_mode():  # mmcv's own cannot be
        torch.onnx.export(attention, (x,), str(tmp_path / "naive.onnx"), opset_version=11, dynamo=False)


def test_every_criss_cross_module_is_wrapped(attention):
    model = nn.Sequential(nn.Conv2d(3, 16, 1), attention)
    assert make_criss_cross_exportable(model) == 1 and isinstance(model[1], ExportableCrissCross)


def test_ccnet_exports_at_opset_11_and_agrees_with_pytorch(tmp_path):
    """The whole model, as the workflow exports and verifies it (random weights that predict many classes)."""
    from deeplabv3_pipeline.model.export import disagreement, export_onnx
    from deeplabv3_pipeline.model.mmseg_model import SegmentationExport, build_model, randomize_for_varied_predictions

    segmentor = build_model("ccnet_r50-d8_4xb2-40k_cityscapes-512x1024")
    randomize_for_varied_predictions(segmentor, seed=0)
    model = SegmentationExport(segmentor, (64, 128)).eval()
    export_onnx(model, tmp_path / "ccnet.onnx", opset=11)
    found = disagreement(model, tmp_path / "ccnet.onnx")
    assert found.decisive_differing == 0 and found.differing < 1e-3, found
