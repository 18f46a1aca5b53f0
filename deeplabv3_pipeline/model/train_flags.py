"""The flags of scripts/train_demo_checkpoint.py for config ``demo.training`` (the workflow's rule
train_demo_checkpoint and scripts/gpu_check.py give the same ones). Apart from :mod:`.train`, which
imports mmengine's runner: the workflow reads this at every start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def training_flags(training: Mapping[str, Any]) -> list[str]:
    """``--iterations 90 --batch-size 4 --crop 64 128 ...`` of a ``demo.training`` mapping."""
    flags = ["--iterations", training["iterations"], "--batch-size", training["batch_size"]]
    flags += ["--crop", *training["crop"], "--frame-shape", *training["frame_shape"]]
    flags += ["--frames", training["frames"], "--lr", training["lr"]]
    return [str(flag) for flag in flags]
