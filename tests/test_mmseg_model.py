import sys
import types

import numpy as np
import pytest
import torch

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model import mmseg_model
from deeplabv3_pipeline.model.mmseg_model import build_model, load_checkpoint, load_export_model, predict_class_ids
from deeplabv3_pipeline.model.zoo import DEFAULT_CONFIG, published_miou, resolve_config

from .conftest import SHAPE


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

    model = load_export_model(DEFAULT_CONFIG, checkpoint, SHAPE)
    image = np.random.default_rng(0).standard_normal((1, 3, *SHAPE), dtype=np.float32)
    ours = predict_class_ids(model, image)
    meta = {"img_shape": SHAPE, "ori_shape": SHAPE, "pad_shape": SHAPE, "padding_size": [0, 0, 0, 0]}
    with torch.inference_mode():
        theirs = model.segmentor.predict(torch.from_numpy(image), [SegDataSample(metainfo=meta)])
    assert model.segmentor.test_cfg.mode == "whole"
    np.testing.assert_array_equal(ours[0, 0], theirs[0].pred_sem_seg.data.numpy()[0])
    assert len(np.unique(ours)) >= 3, "a near-constant prediction would make every comparison trivially pass"


def test_checkpoint_problems_are_clear(tmp_path, checkpoint):
    model = build_model(DEFAULT_CONFIG)
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
        load_checkpoint(build_model(DEFAULT_CONFIG), path)


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
