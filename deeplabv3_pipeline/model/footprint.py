"""What a model's export, verify and simplify jobs need, sized from what the start check measured of it.

The start check (model_checks.check_models_run) builds each model and runs its export graph once on a
small probe image anyway; it also measures the model there (:class:`Footprint`: the bytes of its weights,
the largest tensor one of its modules outputs, the seconds of that forward pass). A job's memory and
wall time follow from the footprint and the job's input shape by the coefficients below, which are
upper envelopes of measurements (docs/zoo-support.md, "Job sizes"): peak RSS (``/usr/bin/time``) of
export_onnx.py, verify_onnx.py and simplify_onnx.py for DeepLabV3 R50-D8, BiSeNetV2, HRNet-18s and
SETR ViT-L at 128x256 to 1024x2048. Where each grows:

- the ONNX export holds the weights several times (the module, the traced graph, the serialized
  proto): memory grows with the weights, and only a little with the image;
- verify runs PyTorch and ONNX Runtime on one image: memory grows with the activations;
- onnxsim folds constants in the proto: the weights only.

No torch here: the rules size jobs at parse time from cached footprints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MIB = 2**20

# The fields of Footprint, in the start check's cache key: a change of them measures every model again
FOOTPRINT_FORMAT = 1

# The jobs sized by the model (config `resources.export_onnx` gives numbers for all three instead).
SIZED_STAGES = ("export_onnx", "verify_onnx", "simplify_onnx")


@dataclass(frozen=True)
class Footprint:
    """A model as the start check measured it: float32 weights and buffers (MB), the largest tensor a
    module outputs on the probe image (MB) and that image's pixels, and one forward pass there (s, on
    the machine that parsed the workflow)."""

    weight_mb: float
    activation_mb: float
    probe_pixels: int
    probe_seconds: float

    def activation_mb_at(self, shape: tuple[int, int]) -> float:
        """The largest module output at ``shape``: activations grow with the pixels (a slide-mode model
        runs crops, so this over-counts it: the safe side)."""
        return self.activation_mb * shape[0] * shape[1] / self.probe_pixels

    def forward_seconds_at(self, shape: tuple[int, int]) -> float:
        return self.probe_seconds * shape[0] * shape[1] / self.probe_pixels

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: Any) -> Footprint | None:
        """The footprint a cache kept, or None where it is not one (an older version's entry)."""
        try:
            return cls(**{name: record[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class JobSize:
    """Peak memory of a kind of job: ``base_mb`` (Python, torch, mmseg imported) + ``per_weight_mb`` x
    the weights + ``per_activation_mb`` x the largest activation at the job's shape; and its wall time:
    ``base_s`` + ``forward_passes`` x one forward pass at the job's shape."""

    base_mb: float
    per_weight_mb: float
    per_activation_mb: float
    base_s: float
    forward_passes: float


# Upper envelopes of the measurements (module docstring); MEMORY_MARGIN and TIME_MARGIN on top.
JOB_SIZES = {
    "export_onnx": JobSize(base_mb=450, per_weight_mb=6.0, per_activation_mb=2.5, base_s=30, forward_passes=3),
    "verify_onnx": JobSize(base_mb=450, per_weight_mb=4.0, per_activation_mb=6.0, base_s=30, forward_passes=4),
    "simplify_onnx": JobSize(base_mb=350, per_weight_mb=5.5, per_activation_mb=0.0, base_s=30, forward_passes=1),
}
MEMORY_MARGIN = 1.25
# wall time on a cluster node may be slower than where the workflow was parsed (the probe's machine)
TIME_MARGIN = 2.0


def job_memory_mb(footprint: Footprint, stage: str, shape: tuple[int, int]) -> int:
    """Memory (MB) to ask for a ``stage`` job of the model at input ``shape``, rounded up to 100 MB."""
    size = JOB_SIZES[stage]
    estimate = (
        size.base_mb
        + size.per_weight_mb * footprint.weight_mb
        + size.per_activation_mb * footprint.activation_mb_at(shape)
    )
    return math.ceil(estimate * MEMORY_MARGIN / 100) * 100


def job_runtime_min(footprint: Footprint, stage: str, shape: tuple[int, int]) -> int:
    """Wall time (minutes, at least 5) to ask for a ``stage`` job of the model at input ``shape``."""
    size = JOB_SIZES[stage]
    seconds = size.base_s + size.forward_passes * footprint.forward_seconds_at(shape)
    return max(5, math.ceil(seconds * TIME_MARGIN / 60))


def job_resources(
    footprint: Footprint, stage: str, shape: tuple[int, int], configured: Mapping[str, Any]
) -> dict[str, int]:
    """``mem_mb`` and ``runtime`` of a ``stage`` job: each the config's number where it gives one (config
    ``resources.export_onnx``), else (``auto``) sized from the model's footprint."""
    sized = {"mem_mb": job_memory_mb(footprint, stage, shape), "runtime": job_runtime_min(footprint, stage, shape)}
    return {key: sized[key] if configured.get(key, "auto") == "auto" else int(configured[key]) for key in sized}
