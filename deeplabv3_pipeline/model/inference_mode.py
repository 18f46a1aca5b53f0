"""mmseg's two test modes, as the exported graph computes them.

- ``whole``: the image in one pass; logits resized to the image, argmax.
- ``slide`` (most 769x769 configs, SegFormer): crops of ``crop_size`` every ``stride``, the last row and
  column of crops moved back to end at the image's edge, each crop's logits resized to the crop, summed
  where crops overlap and divided by how many crops cover each pixel; then argmax. The graph unrolls the
  crops (one fixed shape, shared weights), so the ``.bin`` contract, ATC and every backend stay as they are.

Which mode a model uses is its mmseg config's ``model.test_cfg``; ``model.test_mode``, ``model.crop_size``
and ``model.stride`` of the workflow's config (the flags ``--test-mode``, ``--crop-size``, ``--stride``)
replace what they name.

Either mode runs at the model's **test size**: mmseg's test pipeline resizes the image first (its
``Resize`` step: a 769x769 config takes a 1024x2048 frame to 1025x2049) and its postprocess resizes the
logits back to the image before argmax. With ``test_shape`` (``model.test_shape``, ``--test-shape``; the
test pipeline's own, :func:`config_test_shape`, where ``model.input_shape`` is unset) the graph does both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.options import option
from deeplabv3_pipeline.planning.keys import CITYSCAPES_SHAPE

MODES = ("whole", "slide")


@dataclass(frozen=True)
class InferenceMode:
    """One model's test mode: ``whole``, or ``slide`` with its crop size and stride (height, width)."""

    mode: str = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    test_shape: tuple[int, int] | None = None  # the size it runs at; None: the input's

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown test mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.mode == "slide":
            for name in ("crop_size", "stride"):
                value = getattr(self, name)
                if value is None or len(value) != 2 or min(value) < 1:
                    raise UserError(f"slide mode needs {name} as two positive integers (height, width), not {value}")

    def describe(self) -> str:
        at = "" if self.test_shape is None else " at {}x{}".format(*self.test_shape)
        if self.mode == "whole":
            return "whole" + at
        return "slide, crops {}x{} every {}x{}".format(*self.crop_size, *self.stride) + at


@dataclass(frozen=True)
class InferenceModeOptions:
    """What replaces the mmseg config's own ``test_cfg`` (each unset field keeps the config's)."""

    test_mode: str | None = option(
        None, "whole or slide; unset: the mmseg config's test_cfg.mode", config="model.test_mode"
    )
    crop_size: tuple[int, int] | None = option(
        None, "slide crop height and width; unset: the mmseg config's", config="model.crop_size", metavar=("H", "W")
    )
    stride: tuple[int, int] | None = option(
        None, "slide stride, height and width; unset: the mmseg config's", config="model.stride", metavar=("H", "W")
    )
    test_shape: tuple[int, int] | None = option(
        None,
        "the size the model runs at (the image resized to it, the logits back to the image); unset: the input's",
        config="model.test_shape",
        metavar=("H", "W"),
    )


def _pair(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def inference_mode(test_cfg: Mapping[str, Any] | None, options: InferenceModeOptions | None = None) -> InferenceMode:
    """The mode of a segmentor whose mmseg ``test_cfg`` is ``test_cfg``, with ``options`` over it."""
    test_cfg = dict(test_cfg or {})
    options = options or InferenceModeOptions()
    return InferenceMode(
        mode=options.test_mode or test_cfg.get("mode", "whole"),
        crop_size=_pair(options.crop_size or test_cfg.get("crop_size")),
        stride=_pair(options.stride or test_cfg.get("stride")),
        test_shape=_pair(options.test_shape),
    )


def rescaled_shape(image_shape: tuple[int, int], step: Mapping[str, Any]) -> tuple[int, int]:
    """(H, W) of an image of ``image_shape`` after mmcv's ``Resize`` ``step`` (its ``scale`` (w, h), kept
    ratio or not, or its ``scale_factor``), with mmcv's arithmetic (``mmcv.image.rescale_size``: the
    largest size within the scale, each side rounded half up)."""
    height, width = image_shape
    if isinstance(step.get("scale"), int):  # mmcv: an int scale is (scale, scale)
        step = {**step, "scale": (step["scale"], step["scale"])}
    if isinstance(step.get("scale_factor"), (tuple, list)):
        raise UserError(
            f"a test pipeline Resize with per-side scale_factor {step['scale_factor']} is not supported: "
            "set model.test_shape (or model.input_shape) to the size the model runs at"
        )
    if step.get("scale") is not None:
        scale_w, scale_h = step["scale"]
        if not step.get("keep_ratio", False):
            return int(scale_h), int(scale_w)
        factor = min(max(scale_w, scale_h) / max(height, width), min(scale_w, scale_h) / min(height, width))
    elif step.get("scale_factor") is not None:
        factor = float(step["scale_factor"])
    else:
        return tuple(image_shape)
    return int(height * factor + 0.5), int(width * factor + 0.5)


def pipeline_test_shape(test_pipeline: Sequence[Mapping[str, Any]], image_shape: tuple[int, int]) -> tuple[int, int]:
    """The size a test pipeline's ``Resize`` steps give an image of ``image_shape`` (the image's without one)."""
    shape = tuple(image_shape)
    for step in test_pipeline:
        if str(step.get("type", "")).rsplit(".", 1)[-1] == "Resize":
            shape = rescaled_shape(shape, step)
    return shape


def config_test_shape(config: str | Path, image_shape: tuple[int, int] = CITYSCAPES_SHAPE) -> tuple[int, int]:
    """The test size of the mmseg config ``config`` (a name or file) for images of ``image_shape``: its test
    pipeline's (read with mmengine, no model built; a 769x769 config: 1025x2049 for a Cityscapes frame)."""
    from mmengine.config import Config

    from deeplabv3_pipeline.model.zoo import resolve_config

    parsed = Config.fromfile(str(resolve_config(config)))
    pipeline = parsed.get("test_pipeline") or parsed.get("test_dataloader", {}).get("dataset", {}).get("pipeline")
    return pipeline_test_shape(pipeline or [], image_shape)


def slide_windows(shape: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, ...]]:
    """The crops (y1, y2, x1, x2) of mmseg's ``EncoderDecoder.slide_inference`` over an image of ``shape``,
    in its order: rows of crops every stride, the last one of each row and column moved back so that it
    ends at the image's edge (so crops overlap there), a crop larger than the image being the image."""
    (height, width), (crop_h, crop_w), (stride_h, stride_w) = shape, crop, stride
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    columns = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    windows = []
    for row in range(rows):
        for column in range(columns):
            y2, x2 = min(row * stride_h + crop_h, height), min(column * stride_w + crop_w, width)
            windows.append((max(y2 - crop_h, 0), y2, max(x2 - crop_w, 0), x2))
    return windows
