import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model import mmseg_model
from deeplabv3_pipeline.model.inference_mode import (
    CITYSCAPES_SHAPE,
    InferenceMode,
    InferenceModeOptions,
    config_test_shape,
    rescaled_shape,
    slide_windows,
)
from deeplabv3_pipeline.model.mmseg_model import build_model, load_checkpoint, load_export_model, predict_class_ids
from deeplabv3_pipeline.model.zoo import DEFAULT_CONFIG, published_miou, resolve_config

from ..conftest import MODEL_CONFIG, SHAPE, run_script


def test_config_names_resolve_to_the_shipped_files():
    assert resolve_config(DEFAULT_CONFIG).name == f"{DEFAULT_CONFIG}.py"
    # the guide's mmseg 0.x name maps to the 1.x file
    assert resolve_config("deeplabv3_r50-d8_512x1024_40k_cityscapes").name == f"{DEFAULT_CONFIG}.py"


def test_unknown_config_suggests_close_names():
    with pytest.raises(UserError, match=r"unknown mmseg config.*Close names: deeplabv3_r50-d8_4xb2-40k_cityscapes"):
        resolve_config("deeplabv3_r50-d8_4xb2-40k_cityscape-512x1024")


def test_published_miou_is_the_metafile_s_for_zoo_configs_only():
    # the four R50-D8 512x1024 40k configs the matrix issue names, with mmseg's published figures
    assert published_miou("fcn_r50-d8_4xb2-40k_cityscapes-512x1024") == 72.25
    assert published_miou("pspnet_r50-d8_4xb2-40k_cityscapes-512x1024") == 77.85
    assert published_miou("deeplabv3_r50-d8_512x1024_40k_cityscapes") == 79.09  # the guide's 0.x name
    assert published_miou("deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024") == 79.61
    assert published_miou("/somewhere/my_own_config.py") is None


def test_stand_in_is_used_only_when_the_compiled_extension_is_absent(monkeypatch):
    monkeypatch.delitem(sys.modules, "mmcv._ext", raising=False)
    assert mmseg_model.install_mmcv_ext_stand_in() is True  # mmcv-lite: no compiled extension on disk
    stand_in = sys.modules["mmcv._ext"]
    assert hasattr(stand_in, "nms")  # what mmcv.ops' loader checks
    with pytest.raises(RuntimeError, match="mmcv-lite"):
        stand_in.nms()
    real = types.ModuleType("mmcv._ext")
    monkeypatch.setitem(sys.modules, "mmcv._ext", real)
    assert mmseg_model.install_mmcv_ext_stand_in() is False
    assert sys.modules["mmcv._ext"] is real


def test_wrapper_equals_mmseg_whole_mode_and_predicts_several_classes(checkpoint):
    from mmseg.structures import SegDataSample

    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE)
    image = np.random.default_rng(0).standard_normal((1, 3, *SHAPE), dtype=np.float32)
    ours = predict_class_ids(model, image)
    meta = {"img_shape": SHAPE, "ori_shape": SHAPE, "pad_shape": SHAPE, "padding_size": [0, 0, 0, 0]}
    with torch.inference_mode():
        theirs = model.segmentor.predict(torch.from_numpy(image), [SegDataSample(metainfo=meta)])
    assert model.segmentor.test_cfg.mode == "whole"
    np.testing.assert_array_equal(ours[0, 0], theirs[0].pred_sem_seg.data.numpy()[0])
    assert len(np.unique(ours)) >= 3, "a near-constant prediction would make every comparison trivially pass"


# 64x128 in 48x48 crops every 32: 2 rows x 4 columns, the last of each moved back to the edge, so
# pixels are covered by 1, 2 or 4 crops: where a naive slide (no overlap, no averaging) would differ
SLIDE = InferenceModeOptions(test_mode="slide", crop_size=(48, 48), stride=(32, 32))


def test_slide_windows_are_mmsegs_grid():
    assert slide_windows((64, 128), (48, 48), (32, 32)) == [
        (0, 48, 0, 48), (0, 48, 32, 80), (0, 48, 64, 112), (0, 48, 80, 128),
        (16, 64, 0, 48), (16, 64, 32, 80), (16, 64, 64, 112), (16, 64, 80, 128),
    ]  # fmt: skip
    assert slide_windows((64, 128), (769, 769), (513, 513)) == [(0, 64, 0, 128)]  # a crop larger than the image
    assert slide_windows((64, 128), (32, 64), (32, 64)) == [
        (0, 32, 0, 64),
        (0, 32, 64, 128),
        (32, 64, 0, 64),
        (32, 64, 64, 128),
    ]


def test_slide_mode_equals_mmsegs_slide_inference_where_crops_overlap(checkpoint):
    from mmengine.config import ConfigDict
    from mmseg.structures import SegDataSample

    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE, SLIDE)
    assert model.mode == InferenceMode("slide", (48, 48), (32, 32)) and len(model.windows) == 8
    assert set(model.crop_count.unique().tolist()) == {1.0, 2.0, 4.0}
    image = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, *SHAPE), dtype=np.float32))
    segmentor = model.segmentor
    segmentor.test_cfg = ConfigDict(mode="slide", crop_size=(48, 48), stride=(32, 32))
    meta = {"img_shape": SHAPE, "ori_shape": SHAPE, "pad_shape": SHAPE, "padding_size": [0, 0, 0, 0]}
    with torch.inference_mode():
        ours = model.logits(image)
        theirs = segmentor.slide_inference(image, [dict(meta)])
        predicted = segmentor.predict(image, [SegDataSample(metainfo=meta)])[0].pred_sem_seg.data.numpy()[0]
        whole = load_export_model(MODEL_CONFIG, checkpoint, SHAPE).logits(image)
    assert torch.equal(ours, theirs)  # the same sums in the same order: equal, not close
    np.testing.assert_array_equal(predict_class_ids(model, image.numpy())[0, 0], predicted)
    assert len(np.unique(predicted)) >= 3
    assert (whole.argmax(1) != ours.argmax(1)).float().mean() > 0.1  # whole mode would have been another answer


def test_the_config_decides_the_mode_and_the_options_replace_what_they_name(checkpoint):
    slide_config = "deeplabv3_r18-d8_4xb2-80k_cityscapes-769x769"  # test_cfg: slide, 769x769 every 513x513
    model = load_export_model(slide_config, checkpoint, SHAPE)
    assert model.mode == InferenceMode("slide", (769, 769), (513, 513)) and model.windows == [(0, 64, 0, 128)]
    assert load_export_model(MODEL_CONFIG, checkpoint, SHAPE).mode == InferenceMode("whole")
    smaller = load_export_model(slide_config, checkpoint, SHAPE, InferenceModeOptions(crop_size=(64, 96)))
    assert smaller.mode == InferenceMode("slide", (64, 96), (513, 513)) and len(smaller.windows) == 2
    with pytest.raises(UserError, match=r"slide mode needs crop_size as two positive integers"):
        load_export_model(MODEL_CONFIG, checkpoint, SHAPE, InferenceModeOptions(test_mode="slide"))


def test_the_test_size_is_the_test_pipelines_with_mmcvs_arithmetic():
    """A 769x769 config resizes a Cityscapes frame to 1025x2049 (mmcv's keep-ratio rounding), the others
    keep 1024x2048; every shape below as mmcv.image.rescale_size computes it."""
    from mmcv.image import rescale_size

    assert config_test_shape("deeplabv3_r50-d8_4xb2-80k_cityscapes-769x769") == (1025, 2049)
    assert config_test_shape(DEFAULT_CONFIG) == CITYSCAPES_SHAPE
    for shape in [(1024, 2048), (64, 128), (1000, 1999), (512, 1024), (777, 333)]:
        for scale in [(2049, 1025), (2048, 1024), (1024, 512)]:
            width, height = rescale_size((shape[1], shape[0]), scale)
            assert rescaled_shape(shape, {"scale": scale, "keep_ratio": True}) == (height, width), (shape, scale)
        width, height = rescale_size((shape[1], shape[0]), 0.75)
        assert rescaled_shape(shape, {"scale_factor": 0.75}) == (height, width)
    assert rescaled_shape((64, 128), {"scale": (100, 50), "keep_ratio": False}) == (50, 100)
    assert rescaled_shape((64, 128), {"scale": 96, "keep_ratio": True}) == rescaled_shape(
        (64, 128), {"scale": (96, 96), "keep_ratio": True}
    )  # mmcv: an int scale is (scale, scale)
    with pytest.raises(UserError, match="per-side scale_factor"):
        rescaled_shape((64, 128), {"scale_factor": (0.5, 0.75)})


def test_at_another_test_size_the_logits_equal_mmsegs_predict_and_the_classes_its_pipeline(checkpoint):
    """The image resized to the test size (64x128 -> 65x129: the 769x769 configs' 1024x2048 -> 1025x2049 in
    small), slid in 48x48 crops every 32, the logits resized back: equal to mmseg's predict on the same
    resized image with ori_shape the image's. Against mmseg's whole pipeline (cv2 resizes the uint8
    image, then normalisation) the classes agree on nearly every pixel (the resize rounds to grey levels)."""
    import cv2
    from mmengine.config import ConfigDict
    from mmseg.structures import SegDataSample

    from deeplabv3_pipeline.data.transform import normalize

    test_shape = (65, 129)
    options = InferenceModeOptions(test_mode="slide", crop_size=(48, 48), stride=(32, 32), test_shape=test_shape)
    model = load_export_model(MODEL_CONFIG, checkpoint, SHAPE, options)
    assert model.mode.describe() == "slide, crops 48x48 every 32x32 at 65x129"
    assert len(model.windows) == 8 and model.windows[-1] == (17, 65, 81, 129)  # the crops tile the test size
    bgr = np.random.default_rng(2).integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    bgr = cv2.GaussianBlur(bgr, (9, 9), 3)  # image-like: neighbouring pixels alike
    image = torch.from_numpy(normalize(bgr))
    segmentor = model.segmentor
    segmentor.test_cfg = ConfigDict(mode="slide", crop_size=(48, 48), stride=(32, 32))
    meta = {"img_shape": test_shape, "ori_shape": SHAPE, "pad_shape": test_shape, "padding_size": [0, 0, 0, 0]}
    with torch.inference_mode():
        ours = model.logits(image)
        resized = torch.nn.functional.interpolate(image, size=test_shape, mode="bilinear", align_corners=False)
        theirs = segmentor.predict(resized, [SegDataSample(metainfo=meta)])[0]
        # mmseg's own pipeline: cv2 resizes the uint8 image (mmcv's Resize), then the data preprocessor normalises
        cv2_resized = cv2.resize(bgr, (test_shape[1], test_shape[0]), interpolation=cv2.INTER_LINEAR)
        pipeline = segmentor.predict(torch.from_numpy(normalize(cv2_resized)), [SegDataSample(metainfo=meta)])
    assert ours.shape[-2:] == SHAPE
    assert torch.equal(ours[0], theirs.seg_logits.data)  # the same ops in the same order: equal, not close
    classes = predict_class_ids(model, image.numpy())[0, 0]
    np.testing.assert_array_equal(classes, theirs.pred_sem_seg.data.numpy()[0])
    agreement = (classes == pipeline[0].pred_sem_seg.data.numpy()[0]).mean()
    print(f"classes agree with mmseg's cv2 pipeline on {agreement:.4%} of the pixels")
    assert agreement > 0.99, agreement
    untouched = load_export_model(MODEL_CONFIG, checkpoint, SHAPE, SLIDE)
    with torch.inference_mode():
        assert (untouched.logits(image).argmax(1) != ours.argmax(1)).float().mean() > 0.01  # the size matters


def test_slide_export_agrees_with_pytorch_through_the_cli(checkpoint, tmp_path):
    """Two 64x96 crops overlapping in the middle third, exported and checked by export_onnx.py --verify."""
    output = tmp_path / "slide.onnx"
    completed = run_script(
        "export_onnx.py", MODEL_CONFIG, "--checkpoint", checkpoint, "--output-file", output, "--shape", *SHAPE,
        "--test-mode", "slide", "--crop-size", 64, 96, "--stride", 64, 32, "--verify",
    )  # fmt: skip
    assert "slide, crops 64x96 every 64x32" in completed.stderr and output.is_file()
    slices = [node for node in onnx.load(str(output)).graph.node if node.op_type == "Slice"]
    assert len(slices) >= 2  # the crops are in the graph


def test_checkpoint_problems_are_clear(tmp_path, checkpoint):
    model = build_model(MODEL_CONFIG)
    with pytest.raises(UserError, match=f"checkpoint {tmp_path / 'absent.pth'} does not exist"):
        load_checkpoint(model, tmp_path / "absent.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(UserError, match="truncated"):
        load_checkpoint(model, truncated)
    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": {"backbone.stem.0.weight": torch.zeros(1), "extra.weight": torch.zeros(1)}}, wrong)
    with pytest.raises(UserError, match=r"missing.*unexpected \(e.g. extra.weight\).*wrong shape"):
        load_checkpoint(model, wrong)


class Unsafe:
    pass


def test_checkpoint_needing_unsafe_unpickling_is_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "meta": Unsafe()}, path)
    with pytest.raises(UserError, match="weights_only=True"):
        load_checkpoint(build_model(MODEL_CONFIG), path)


PSANET = "psanet_r50-d8_4xb2-40k_cityscapes-512x1024"


def test_a_model_that_calls_a_compiled_mmcv_kernel_is_found_before_any_job():
    """PSANet's PSAMask is one of mmcv-full's compiled kernels (mmcv-lite here): the probe names it;
    DeepLabV3 and CCNet (whose criss-cross attention mmcv 2 writes in plain PyTorch) run."""
    problem = mmseg_model.run_problem(PSANET)
    assert problem == (
        "it calls mmcv._ext.psamask_forward, a compiled kernel of mmcv-full, which this environment (mmcv-lite) lacks"
    )
    with pytest.raises(UserError, match=f"model config {PSANET} cannot run in this workflow here: it calls "):
        mmseg_model.check_model_runs(PSANET)
    assert mmseg_model.run_problem(DEFAULT_CONFIG) is None
    assert mmseg_model.run_problem("ccnet_r50-d8_4xb2-40k_cityscapes-512x1024") is None


def test_the_probe_measures_the_models_footprint(guide_checkpoint):
    """What the export jobs are sized from (model/footprint.py): the weights, as many MB as the model's
    checkpoint holds; the largest module output, R50-D8's 2048-channel layer4 output at 1/8 of the 128x256
    probe (2048 x 16 x 32 float32 = 4 MiB); the probe's seconds. A model that cannot run has none."""
    probe = mmseg_model.probe_model(DEFAULT_CONFIG)
    assert probe.problem is None
    assert probe.footprint.weight_mb == pytest.approx(Path(guide_checkpoint).stat().st_size / 2**20, rel=0.01)
    assert probe.footprint.activation_mb == 4.0
    assert probe.footprint.probe_pixels == 128 * 256 and probe.footprint.probe_seconds > 0
    assert mmseg_model.probe_model(PSANET).footprint is None


def test_an_operator_the_opset_lacks_is_found_before_any_job():
    """The probe also exports, at model.opset, as the export job would: PointRend's grid_sample needs
    opset 16, SegFormer's unflatten 13; CCNet exports at 11 through its rewrite (criss_cross.py)."""
    pointrend = mmseg_model.run_problem("pointrend_r50_4xb2-80k_cityscapes-512x1024", opset=11)
    assert pointrend.startswith("its ONNX export at opset 11 (model.opset) fails: ") and "grid_sampler" in pointrend
    assert mmseg_model.run_problem("ccnet_r50-d8_4xb2-40k_cityscapes-512x1024", opset=11) is None
    segformer = "segformer_mit-b0_8xb1-160k_cityscapes-1024x1024"
    assert "aten::unflatten" in mmseg_model.run_problem(segformer, opset=11)
    assert mmseg_model.run_problem(segformer, opset=13) is None
    assert mmseg_model.run_problem(DEFAULT_CONFIG, opset=11) is None
