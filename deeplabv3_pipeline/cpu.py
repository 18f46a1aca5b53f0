"""Facts about this machine's CPU that decide which precisions it can run natively.

Why it matters: OpenVINO's CPU plugin quietly computes in bf16 when the CPU has native BF16
(AVX512_BF16 or AMX), and emulated bf16 elsewhere would be slow and pointless. So a bf16 run is
asked for explicitly, and refused with a clear sentence on a CPU that cannot do it.
Every function takes the flags as an argument (``None``: read this CPU's) so tests can pretend
to be either kind of machine.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError

CPUINFO = Path("/proc/cpuinfo")
# The Linux names of the instruction set extensions that compute bf16 natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpuinfo_field(name: str, text: str) -> str | None:
    """The value of the first ``name : value`` line of /proc/cpuinfo text (all cores repeat it)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def read_cpuinfo() -> str:
    """/proc/cpuinfo, or '' where there is none (macOS, Windows, a locked-down container)."""
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags from /proc/cpuinfo; empty where unreadable (then no bf16 is assumed)."""
    flags = cpuinfo_field("flags", read_cpuinfo())
    return frozenset(flags.split()) if flags else frozenset()


def cpu_model_name() -> str:
    """The CPU's marketing name, for messages and reports."""
    return cpuinfo_field("model name", read_cpuinfo()) or platform.processor() or platform.machine() or "unknown CPU"


def bf16_features(flags: Iterable[str] | None = None) -> list[str]:
    """Which native-BF16 extensions (``avx512_bf16``, ``amx_bf16``) the CPU has, in that order."""
    present = cpu_flags() if flags is None else frozenset(flags)
    return [flag for flag in BF16_FLAGS if flag in present]


def has_bf16(flags: Iterable[str] | None = None) -> bool:
    return bool(bf16_features(flags))


def require_bf16(what: str, flags: Iterable[str] | None = None, *, instead: Iterable[str] = ("fp32",)) -> None:
    """Raise a one-line :class:`UserError` naming the missing feature unless the CPU computes bf16 natively.

    ``what`` names the request (``"precision bf16 (openvino)"``); ``instead`` the precisions to suggest.
    """
    if has_bf16(flags):
        return
    raise UserError(
        f"{what} needs a CPU with native BF16 ({' or '.join(BF16_FLAGS)}); this CPU ({cpu_model_name()}) has "
        f"neither: use precision {' or '.join(instead)}"
    )
