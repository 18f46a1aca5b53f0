"""Facts about this machine's CPU: which precisions it runs natively, and how fast it could go.

Why it matters: OpenVINO's CPU plugin quietly computes in bf16 when the CPU has native BF16
(AVX512_BF16 or AMX), and emulated bf16 elsewhere would be slow and pointless. So a bf16 run is
asked for explicitly, and refused with a clear sentence on a CPU that cannot do it.
Every function takes the flags as an argument (``None``: read this CPU's) so tests can pretend
to be either kind of machine.

The benchmark puts each variant's rate next to this machine's peak: the theoretical one from the
instruction set, cores and clock (:func:`theoretical_peaks`), and the best one measured with the
runtimes' own kernels (:func:`gemm_rate`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UserError

CPUINFO = Path("/proc/cpuinfo")
SYS_CPU = Path("/sys/devices/system/cpu")
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


def given_or_own_flags(flags: Iterable[str] | None) -> frozenset[str]:
    """``flags`` as a set, or this CPU's when None (tests pass the flags of the other CPU kind)."""
    return cpu_flags() if flags is None else frozenset(flags)


def cpu_model_name() -> str:
    """The CPU's marketing name, for messages and reports."""
    return cpuinfo_field("model name", read_cpuinfo()) or platform.processor() or platform.machine() or "unknown CPU"


def bf16_features(flags: Iterable[str] | None = None) -> list[str]:
    """Which native-BF16 extensions (``avx512_bf16``, ``amx_bf16``) the CPU has, in that order."""
    present = given_or_own_flags(flags)
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


# ---------------------------------------------------------------- machine facts for the benchmark

# The flags that decide how fast this model can run, in the order reports list them.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
FMA_UNITS = 2  # per core: an upper bound for most server cores (see theoretical_peaks)


def speed_flags(flags: Iterable[str] | None = None) -> list[str]:
    """Which of :data:`SPEED_FLAGS` the CPU has, in that order."""
    present = given_or_own_flags(flags)
    return [flag for flag in SPEED_FLAGS if flag in present]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask: a batch job's share, not the whole machine)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def max_clock_mhz(max_freq_khz_texts: Iterable[str], cpuinfo: str) -> float | None:
    """The highest clock in MHz among cpufreq's ``cpuinfo_max_freq`` texts (kHz) and /proc/cpuinfo's
    ``cpu MHz`` lines (the current clock: a floor where cpufreq is hidden, as in many VMs); None if neither."""
    clocks = []
    for text in max_freq_khz_texts:
        try:
            clocks.append(float(text.strip()) / 1000.0)
        except ValueError:
            continue
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "cpu MHz":
            try:
                clocks.append(float(value))
            except ValueError:
                continue
    clocks = [clock for clock in clocks if clock > 0]
    return max(clocks) if clocks else None


def clock_mhz(sys_cpu: Path = SYS_CPU, cpuinfo: Path = CPUINFO) -> float | None:
    """This machine's highest listed clock in MHz (see :func:`max_clock_mhz`); None where nothing is readable."""
    texts = []
    for path in sys_cpu.glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    try:
        info = cpuinfo.read_text(errors="replace")
    except OSError:
        info = ""
    return max_clock_mhz(texts, info)


def vector_lanes(flags: frozenset[str]) -> int:
    """fp32 lanes of the widest FMA vector: 16 (AVX-512), 8 (AVX2 with FMA), 4 (SSE)."""
    if "avx512f" in flags:
        return 16
    return 8 if {"avx2", "fma"} <= flags else 4


def theoretical_peaks(flags: Iterable[str] | None, cores: int, mhz: float | None) -> dict[str, float | None]:
    """Peak GOP/s per precision (``fp32``, ``bf16``, ``int8``) from the instruction set, cores and clock.

    fp32 FLOP per cycle and core = 2 FMA units x vector lanes (16 with avx512f, 8 with avx2+fma, 4
    otherwise) x 2 (an FMA is a multiply and an add). bf16 = 2 x fp32 where avx512_bf16 (vdpbf16ps: two
    products per fp32 lane) or amx_bf16; with AMX this is a lower bound of the tile unit's rate, which is
    several times higher. int8 = 4 x fp32 with avx512_vnni or avx_vnni (vpdpbusd: four products per
    lane), 2 x fp32 with avx2 only (vpmaddubsw + vpmaddwd); None without avx2. With amx_int8 the int8
    figure is likewise a lower bound. None for a precision without native support, and for all where the
    clock is unknown.

    Not a promise: 2 FMA units is an upper bound for most server cores (many have one 512-bit unit, or
    split 512-bit ops in two 256-bit halves), while turbo clocks can exceed the listed clock. That is
    why the gathering step also takes the best rate measured on this machine (:func:`gemm_rate`) and
    shows no variant above the larger of the two.
    """
    present = given_or_own_flags(flags)
    if not mhz or cores < 1:
        return {"fp32": None, "bf16": None, "int8": None}
    fp32 = FMA_UNITS * vector_lanes(present) * 2 * cores * mhz / 1000.0  # MHz x FLOP/cycle = MFLOP/s
    bf16 = 2 * fp32 if has_bf16(present) else None
    if {"avx512_vnni", "avx_vnni"} & present:
        int8: float | None = 4 * fp32
    elif "avx2" in present:
        int8 = 2 * fp32
    else:
        int8 = None
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def peak_notes(flags: Iterable[str] | None = None) -> list[str]:
    """The caveats of :func:`theoretical_peaks` that apply to this CPU, one sentence each."""
    present = given_or_own_flags(flags)
    notes = [
        f"fp32: {FMA_UNITS} FMA units x {vector_lanes(present)} lanes x 2 per core and cycle at the listed "
        "clock: an upper bound for most cores (one 512-bit unit, or 512-bit ops split in 256-bit halves; "
        "cores are usable logical CPUs, and SMT siblings share one core's units), though turbo can exceed "
        "the listed clock"
    ]
    if "amx_bf16" in present:
        notes.append("bf16: 2 x fp32 (AVX512_BF16 rate); AMX tiles can do several times more: a lower bound")
    if "amx_int8" in present:
        notes.append("int8: the VNNI rate; AMX tiles can do several times more: a lower bound")
    return notes


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after one untimed one (other jobs only ever slow a call down)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_rate(threads: int, size: int = 2048, repeats: int = 3) -> dict[str, float | int | None]:
    """fp32 GFLOP/s of a ``size`` x ``size`` matmul in numpy (its BLAS) and torch (oneDNN/MKL), best of ``repeats``.

    ``threads`` = 0: each library's default. numpy's BLAS is limited through threadpoolctl; where that is
    not installed, numpy is only measured at its default (``numpy`` is None otherwise), so a figure is
    never taken at more threads than asked. ``best`` = the larger rate; ``threads`` = torch's count used.
    """
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    flops = 2.0 * size**3
    numpy_gflops = None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threads == 0:
        numpy_gflops = flops / best_seconds(lambda: a @ b, repeats) / 1e9
    elif threadpool_limits is not None:
        with threadpool_limits(limits=threads, user_api="blas"):
            numpy_gflops = flops / best_seconds(lambda: a @ b, repeats) / 1e9
    previous = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        used = torch.get_num_threads()
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        with torch.inference_mode():
            torch_gflops = flops / best_seconds(lambda: torch.mm(ta, tb), repeats) / 1e9
    finally:
        torch.set_num_threads(previous)  # a process-wide setting: leave it as found
    return {
        "numpy": numpy_gflops,
        "torch": torch_gflops,
        "best": max(rate for rate in (numpy_gflops, torch_gflops) if rate is not None),
        "size": size,
        "threads": used,
    }
