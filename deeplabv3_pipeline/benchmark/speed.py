"""The benchmark's table: every variant's speed beside the reference's, its agreement, and this CPU's peak.

Each variant was timed in its own job (scripts/benchmark_variant.py) on the workflow's own model
and prep bins; scripts/benchmark_machine.py measured the machine. This module only combines them:

- speed-up: the reference variant's (PyTorch eager fp32 by default) median seconds per image over
  the variant's;
- pixel agreement: the share of pixels whose class equals the reference's, over the timed images;
- ``= its cell``: where the variant is a cell of the config, its timed outputs equal that cell's own
  predictions of the same frames (MLPerf's TEST01; a difference stops its benchmark job);
- operation rates: the reference fp32 graph's operations per image over the median time
  (``effective``: what the model needs), and the variant's own graph's (``executed``: Winograd does
  fewer products, so its effective rate may pass any peak while its executed rate may not);
- peak, per precision: the larger of the ISA figure (cores x clock x operations per cycle, from
  the CPU's features) and the best rate measured on this machine (the fp32 GEMM, and every
  variant's executed rate at that precision). A measured rate above the ISA figure means the
  cores ran above the listed clock (turbo) or the ISA figure's assumptions are off; either way the
  peak shown is one that was reached, never one exceeded.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np

from deeplabv3_pipeline.evaluation.metrics import pixel_agreement
from deeplabv3_pipeline.report.tables import html_table, markdown_table

ROW_COLUMNS = (
    ("variant", "variant"),
    ("inference_precision", "computed in"),
    ("median_s", "s/image"),
    ("images_per_s", "images/s"),
    ("speedup", "speed-up"),
    ("pixel_agreement", "agreement"),
    ("cell_consistency", "= its cell"),
    ("executed_gops", "executed GOP/s"),
    ("percent_of_peak", "% of peak"),
    ("peak_rss_mb", "peak RSS (MB)"),
    ("projected_s", "projected s"),
)


def executed_rate(variant: Mapping) -> float:
    """Operations per second (GOP/s) of the variant's own graph at its median time."""
    return variant["executed_operations_per_image"] / variant["median_s"] / 1e9


def peaks(machine: Mapping, variants: Sequence[Mapping]) -> dict[str, dict[str, float | None]]:
    """Per precision computed in: the ISA figure, the best measured rate, and ``peak`` = the larger."""
    theoretical = machine.get("theoretical_peak_gops") or {}
    measured: dict[str, float] = {}
    gemm = (machine.get("gemm_gflops") or {}).get("best")
    if gemm:
        measured["fp32"] = float(gemm)
    for variant in variants:
        precision = variant["inference_precision"]
        measured[precision] = max(measured.get(precision, 0.0), executed_rate(variant))
    result = {}
    for precision in sorted(set(theoretical) | set(measured)):
        isa, best = theoretical.get(precision), measured.get(precision)
        candidates = [value for value in (isa, best) if value]
        result[precision] = {"theoretical": isa, "measured": best, "peak": max(candidates) if candidates else None}
    return result


def variant_row(
    variant: Mapping, reference: Mapping, agreement: float, peak: float | None, frames: int
) -> dict[str, object]:
    median = variant["median_s"]
    executed = executed_rate(variant)
    return {
        "variant": variant["variant"],
        "backend": variant["backend"],
        "precision": variant["precision"],
        "inference_precision": variant["inference_precision"],
        "precision_evidence": variant.get("precision_evidence"),
        "median_s": median,
        "images_per_s": 1.0 / median,
        "speedup": reference["median_s"] / median,
        "pixel_agreement": agreement,
        "cell_consistency": variant.get("cell_consistency"),
        "effective_gops": variant["operations_per_image"] / median / 1e9,
        "executed_gops": executed,
        "percent_of_peak": 100.0 * (executed / peak) if peak else None,  # x / x is exactly 1: the peak row is 100
        "peak_rss_mb": variant.get("peak_rss_mb"),
        "projected_s": frames * median,
    }


def summarise(
    machine: Mapping,
    variants: Sequence[Mapping],
    predictions: Mapping[str, np.ndarray],
    reference: str,
    frames: int,
    min_agreement: float,
) -> dict[str, object]:
    """The benchmark: a row per variant (in the given order), the peaks, and the fastest variant whose
    agreement with the reference is at least ``min_agreement``. ``frames``: the configured image list's
    length, for the projected compute time."""
    by_name = {variant["variant"]: variant for variant in variants}
    if reference not in by_name:
        raise ValueError(f"the reference variant {reference} was not timed")
    machine_peaks = peaks(machine, variants)
    rows = [
        variant_row(
            variant,
            by_name[reference],
            pixel_agreement(predictions[variant["variant"]], predictions[reference]),
            machine_peaks[variant["inference_precision"]]["peak"],
            frames,
        )
        for variant in variants
    ]
    eligible = [row for row in rows if row["pixel_agreement"] >= min_agreement]
    fastest = min(eligible, key=lambda row: row["median_s"])["variant"] if eligible else None
    return {
        "machine": dict(machine),
        "reference": reference,
        "frames": frames,
        "images_timed": len(by_name[reference]["images"]),
        "input_shape": by_name[reference]["input_shape"],
        "min_pixel_agreement": min_agreement,
        "peaks": machine_peaks,
        "variants": rows,
        "fastest": fastest,
    }


def cell(value: object, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if 0 < abs(value) < 1.5 and digits > 2 else f"{value:.{digits}f}"
    return str(value)


def consistency_cell(consistency: Mapping | None) -> str:
    """Whether the timed outputs equal the variant's cell's predictions (TEST01): n/a without that cell."""
    if consistency is None:
        return "n/a"
    return f"yes ({consistency['frames']} frames)" if consistency["equal"] else "NO"


def table_rows(summary: Mapping) -> tuple[list[str], list[list[str]]]:
    header = [title for _, title in ROW_COLUMNS]
    rows = []
    for row in summary["variants"]:
        marker = " (fastest)" if row["variant"] == summary["fastest"] else ""
        cells = [f"{row['variant']}{marker}", str(row["inference_precision"])]
        cells += [cell(row["median_s"], 3), cell(row["images_per_s"]), cell(row["speedup"])]
        cells += [cell(row["pixel_agreement"], 4), consistency_cell(row["cell_consistency"])]
        cells += [cell(row["executed_gops"], 1), cell(row["percent_of_peak"], 1)]
        cells += [cell(row["peak_rss_mb"], 0), cell(row["projected_s"], 1)]
        rows.append(cells)
    return header, rows


def peak_rows(summary: Mapping) -> tuple[list[str], list[list[str]]]:
    header = ["computed in", "ISA peak (GOP/s)", "best measured (GOP/s)", "peak used (GOP/s)"]
    rows = [
        [precision, cell(values["theoretical"], 1), cell(values["measured"], 1), cell(values["peak"], 1)]
        for precision, values in summary["peaks"].items()
    ]
    return header, rows


def benchmark_setting(summary: Mapping) -> str:
    """One sentence over the benchmark table: the machine, the shape, the reference and the fastest variant."""
    machine = summary["machine"]
    shape = "x".join(map(str, summary["input_shape"]))
    cpu = machine.get("cpu", "this CPU")
    fastest = summary["fastest"] or "none (no variant meets the agreement gate)"
    return (
        f"{cpu}, {machine.get('threads', '?')} threads, {shape}, {summary['images_timed']} images timed; "
        f"reference {summary['reference']}; fastest with agreement >= {summary['min_pixel_agreement']}: {fastest}; "
        f"projected s: compute time of the configured {summary['frames']} images"
    )


def to_markdown(summary: Mapping) -> str:
    lines = ["# Benchmark", "", benchmark_setting(summary), "", *markdown_table(*table_rows(summary)), ""]
    lines += ["## Peak per precision", "", *markdown_table(*peak_rows(summary)), ""]
    return "\n".join(lines)


def to_html_body(summary: Mapping) -> str:
    return (
        f"<p>{html.escape(benchmark_setting(summary))}</p>{html_table(*table_rows(summary))}"
        f"<h2>Peak per precision</h2>{html_table(*peak_rows(summary))}"
    )
