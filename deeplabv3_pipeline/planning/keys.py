"""What a file's key adds for the settings it depends on beyond its name: the image size for the per-frame
files (:func:`data_tag`), the graph's settings for a model (:func:`model_tag`). Each is "" for the defaults,
so a default run keeps the guide's names; any other value gets folders of its own, and switching back
finds the earlier files again. Pure functions of the config's ``model`` section (no heavy imports: the
report reads them too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The size of a Cityscapes frame (H, W): the images' size where model.input_shape is unset
CITYSCAPES_SHAPE = (1024, 2048)
# What a key tag starts with: the file and folder names of a non-default size or graph carry it
# (``demo/val@64x128``, ``deeplabv3@64x128-slide``); model names cannot hold it (the schema's pattern).
TAG = "@"
GUIDE_OPSET = 11  # model.opset's default (ATC wants 11): other opsets key the model


def data_tag(model_settings: Mapping[str, Any]) -> str:
    """What the per-frame files' key adds for the image size: "" at Cityscapes' 1024x2048 (today's
    names), ``@64x128`` for ``model.input_shape: [64, 128]`` (the demo draws its frames at that size)."""
    shape = model_settings.get("input_shape")
    if not shape or tuple(int(side) for side in shape) == CITYSCAPES_SHAPE:
        return ""
    return TAG + shape_text(shape)


def model_tag(model_settings: Mapping[str, Any]) -> str:
    """What a model's key adds for the settings that change its graph, each only where it is not the
    default: the input size, the test size, mode, slide crop and stride, the opset
    (``@64x128-slide-crop48x48-stride32x32``); "" for the defaults (the guide's names)."""
    parts = []
    if model_settings.get("input_shape"):
        parts.append(shape_text(model_settings["input_shape"]))
    if model_settings.get("test_shape"):
        parts.append("test" + shape_text(model_settings["test_shape"]))
    if model_settings.get("test_mode"):
        parts.append(str(model_settings["test_mode"]))
    for key, word in (("crop_size", "crop"), ("stride", "stride")):
        if model_settings.get(key):
            parts.append(word + shape_text(model_settings[key]))
    if int(model_settings.get("opset", GUIDE_OPSET)) != GUIDE_OPSET:
        parts.append(f"opset{model_settings['opset']}")
    return TAG + "-".join(parts) if parts else ""


def given_name(model_key: str) -> str:
    """The name a model was given in the config, without its key's tag: ``deeplabv3@64x128`` -> ``deeplabv3``."""
    return model_key.partition(TAG)[0]


def shape_text(shape: Iterable[int]) -> str:
    """``[64, 128]`` -> ``64x128``."""
    height, width = shape
    return f"{int(height)}x{int(width)}"
