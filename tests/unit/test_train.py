"""The trained demo checkpoint: mmseg's training loop on synthetic frames, saved in the random checkpoint's format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeplabv3_pipeline.data.cityscapes import label_ids_to_train_ids
from deeplabv3_pipeline.data.demo import draw_label_ids, render_image
from deeplabv3_pipeline.data.transform import normalize
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.mmseg_model import load_export_model, predict_class_ids
from deeplabv3_pipeline.model.train import TRAINING_SEED_OFFSET, TrainingOptions, training_seed

from ..conftest import MODEL_CONFIG, SHAPE, run_script

# R18-D8 on 32x64 crops of 64x128 frames: seconds, and the loss falls within these iterations
ITERATIONS = 12


def pixel_accuracy(model: torch.nn.Module, seed: int, count: int = 2) -> float:
    """Share of labelled pixels the model gets right on ``count`` demo frames of ``seed`` at SHAPE."""
    right = total = 0
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        label_ids = draw_label_ids(SHAPE, rng)
        truth = label_ids_to_train_ids(label_ids)
        predicted = predict_class_ids(model, normalize(render_image(label_ids, rng)))[0, 0]
        keep = truth != 255
        right += int(np.sum(predicted[keep] == truth[keep]))
        total += int(np.sum(keep))
    return right / total


def test_training_seed_is_never_the_demo_seed():
    assert training_seed(0) == TRAINING_SEED_OFFSET
    assert all(training_seed(seed) != seed for seed in (0, 1, 7, 12345))


def test_trained_checkpoint_loads_says_trained_and_learned(tmp_path, checkpoint):
    output = tmp_path / "trained.pth"
    completed = run_script(
        "train_demo_checkpoint.py",
        "--model-config",
        MODEL_CONFIG,
        "--output",
        output,
        "--seed",
        0,
        "--iterations",
        ITERATIONS,
        "--crop",
        32,
        64,
        "--frame-shape",
        *SHAPE,
        "--frames",
        4,
        "--threads",
        2,
    )
    assert "TRAINED on synthetic demo frames" in completed.stderr
    saved = torch.load(output, map_location="cpu", weights_only=True)
    meta = saved["meta"]
    assert meta["trained"] is True and "NOT trained" not in meta["synthetic"]
    training = meta["training"]
    assert training["iterations"] == ITERATIONS and training["crop"] == [32, 64]
    assert training["seed"] == training_seed(0) != training["demo_seed"] == 0
    assert len(meta["CLASSES"]) == 19
    # the export wrapper loads it strictly: no missing, unexpected or wrongly shaped key
    trained = load_export_model(MODEL_CONFIG, output, SHAPE)
    # it learned: the loss fell, and on frames of a seed it never saw it beats the random checkpoint
    assert training["final_loss"] < training["first_loss"]
    unseen = 77
    assert pixel_accuracy(trained, unseen) > pixel_accuracy(load_export_model(MODEL_CONFIG, checkpoint, SHAPE), unseen)


def test_options_out_of_range_are_one_line_errors(tmp_path):
    completed = run_script(
        "train_demo_checkpoint.py",
        "--model-config",
        MODEL_CONFIG,
        "--output",
        tmp_path / "x.pth",
        "--iterations",
        0,
        check=False,
    )
    assert completed.returncode == 2 and "error: iterations 0" in completed.stderr
    assert not (tmp_path / "x.pth").exists()


def test_a_crop_below_the_output_stride_is_refused():
    with pytest.raises(UserError, match="at least 32 pixels"):
        TrainingOptions(crop=(16, 64)).check()


def test_the_configs_training_defaults_are_the_clis():
    """config demo.training (schema defaults, config.yaml) and TrainingOptions: one set of defaults."""
    import yaml

    from ..conftest import REPO

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    keys = schema["properties"]["demo"]["properties"]["training"]["properties"]
    defaults, written = TrainingOptions(), yaml.safe_load((REPO / "config.yaml").read_text())["demo"]["training"]
    for key, entry in keys.items():
        expected = getattr(defaults, key)
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert entry["default"] == expected == written[key], key
