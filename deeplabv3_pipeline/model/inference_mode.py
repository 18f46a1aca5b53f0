"""mmseg's two test modes, as the exported graph computes them.

- ``whole``: the image in one pass; logits resized to the image, argmax.
- ``slide`` (most 769x769 configs, SegFormer): crops of ``crop_size`` every ``stride``, the last row and
  column of crops moved back to end at the image's edge, each crop's logits resized to the crop, summed
  where crops overlap and divided by how many crops cover each pixel; then argmax. The graph unrolls the
  crops (one fixed shape, shared weights), so the ``.bin`` contract, ATC and every backend stay as they are.

Which mode a model uses is its mmseg config's ``model.test_cfg``; ``model.test_mode``, ``model.crop_size``
and ``model.stride`` of the workflow's config (the flags ``--test-mode``, ``--crop-size``, ``--stride``)
replace what they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.options import option

MODES = ("whole", "slide")


@dataclass(frozen=True)
class InferenceMode:
    """One model's test mode: ``whole``, or ``slide`` with its crop size and stride (height, width)."""

    mode: str = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown test mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.mode == "slide":
            for name in ("crop_size", "stride"):
                value = getattr(self, name)
                if value is None or len(value) != 2 or min(value) < 1:
                    raise UserError(f"slide mode needs {name} as two positive integers (height, width), not {value}")

    def describe(self) -> str:
        if self.mode == "whole":
            return "whole"
        return "slide, crops {}x{} every {}x{}".format(*self.crop_size, *self.stride)


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
    )


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
