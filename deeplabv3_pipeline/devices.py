"""Device names as PyTorch writes them (config ``pytorch.device``, scripts/gpu_check.py ``--device``): apart from
the backends, so that a tool that must not import the backends' registry yet (the GPU check, before it has
installed what the machine lacks) reads them too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError

DEVICE_KEY = "pytorch.device"
DEVICE_PATTERN = re.compile(r"(cpu|cuda)(?::(\d+))?")


def parse_device(text: str, key: str = DEVICE_KEY) -> tuple[str, int]:
    """``cpu`` -> ("cpu", 0), ``cuda`` -> ("cuda", 0), ``cuda:1`` -> ("cuda", 1); else a :class:`UserError`
    naming ``key``."""
    match = DEVICE_PATTERN.fullmatch(str(text).strip())
    if match is None or (match[1] == "cpu" and match[2] is not None):
        raise UserError(f"{key} {text!r} is not a device: use cpu, cuda or cuda:<index> (cuda:0 is the first GPU)")
    return match[1], int(match[2] or 0)


@dataclass(frozen=True)
class CudaFacts:
    """What this PyTorch says of CUDA here: its CUDA build (None: a CPU-only build) and the GPUs it sees."""

    torch_version: str
    cuda_build: str | None
    device_count: int

    @classmethod
    def here(cls) -> CudaFacts:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(torch.__version__, torch.version.cuda, count)


def device_problems(
    device: str, facts: CudaFacts | None = None, key: str = DEVICE_KEY, on_cpu: str | None = None
) -> list[str]:
    """What is missing to run on ``device``, one sentence each naming the fix (none for the CPU). ``key``: the
    config key or flag that asked for it; ``on_cpu``: how to run on the CPU instead (default: that key or
    flag set to cpu)."""
    kind, index = parse_device(device, key)
    if kind == "cpu":
        return []
    on_cpu = on_cpu or (f"pass {key} cpu" if key.startswith("--") else f"set {key}: cpu")
    facts = facts or CudaFacts.here()
    if facts.cuda_build is None:
        return [
            f"{key} {device}: this PyTorch ({facts.torch_version}) is a CPU-only build: install a CUDA build of "
            f"torch on a machine with an NVIDIA GPU, or {on_cpu}"
        ]
    if facts.device_count == 0:
        return [
            f"{key} {device}: PyTorch {facts.torch_version} (CUDA {facts.cuda_build}) sees no NVIDIA GPU (no "
            f"driver, or CUDA_VISIBLE_DEVICES hides them): run on a machine with one, or {on_cpu}"
        ]
    if index >= facts.device_count:
        return [
            f"{key} {device}: this machine has {facts.device_count} GPU(s), cuda:0..cuda:{facts.device_count - 1}: "
            f"set {key} to one of them"
        ]
    return []
