"""The summary of one result as a person reads it: aAcc, mIoU, mAcc and per-class IoU/Acc beside the
reference figures, the run's settings, the jobs' time and memory; as Markdown (summary.md) and HTML
(summary.html). The reference figures are shown only for a run on real inputs."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

from deeplabv3_pipeline.data.cityscapes import (
    CLASS_NAMES,
    PALETTE,
)
from deeplabv3_pipeline.report.tables import html_page, html_table, markdown_table

# mIoU (%) of deeplabv3_r50-d8_512x1024_40k on Cityscapes val, as the Ascend model-zoo guide lists it.
REFERENCE_MIOU: tuple[tuple[str, float], ...] = (
    ("PyTorch (mmseg)", 79.09),
    ("Ascend 310", 79.06),
    ("Ascend 310P", 79.12),
)


def synthetic_note(result: Mapping) -> str:
    """What is synthetic about the run ('' for a run on real inputs)."""
    return str(result.get("synthetic_inputs") or "")


def references_for(result: Mapping) -> tuple[tuple[str, float], ...]:
    """The reference mIoU figures worth comparing with: none for a synthetic run."""
    return () if synthetic_note(result) else REFERENCE_MIOU


def per_class_values(result: Mapping, key: str) -> np.ndarray:
    """``per_class[name][key]`` in trainId order, NaN where the class is absent (None)."""
    per_class = result["per_class"]
    values = [per_class.get(name, {}).get(key) for name in CLASS_NAMES]
    return np.array([np.nan if value is None else float(value) for value in values])


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def metric_rows(result: Mapping) -> tuple[list[str], list[list[str]]]:
    """aAcc / mIoU / mAcc of the run beside the reference mIoU figures, and the mIoU difference on real inputs."""
    header = ["metric", "this run (%)", *[f"{name} (%)" for name, _ in REFERENCE_MIOU]]
    rows = []
    for metric in ("aAcc", "mIoU", "mAcc"):
        references = [f"{value:.2f}" if metric == "mIoU" else "not published" for _, value in REFERENCE_MIOU]
        rows.append([metric, format_number(result.get(metric)), *references])
    miou = result.get("mIoU")
    if synthetic_note(result) or miou is None:
        differences = ["n/a (synthetic run)" if synthetic_note(result) else "n/a"] * len(REFERENCE_MIOU)
    else:
        differences = [f"{miou - value:+.2f}" for _, value in REFERENCE_MIOU]
    rows.append(["mIoU: this run - reference", "", *differences])
    return header, rows


def class_rows(result: Mapping) -> tuple[list[str], list[list[str]]]:
    header = ["trainId", "class", "IoU (%)", "Acc (%)", "label pixels", "predicted pixels"]
    rows = []
    for index, name in enumerate(CLASS_NAMES):
        entry = result["per_class"].get(name, {})
        rows.append(
            [
                str(index),
                name,
                format_number(entry.get("IoU")),
                format_number(entry.get("Acc")),
                f"{entry.get('label_pixels', 0):,}",
                f"{entry.get('predicted_pixels', 0):,}",
            ]
        )
    return header, rows


def run_rows(result: Mapping) -> tuple[list[str], list[list[str]]]:
    speed = result.get("throughput") or {}
    rows = [
        ["backend", str(result.get("backend") or "-")],
        ["images", str(result.get("num_images"))],
        ["model file", str(result.get("model_file") or "-")],
        ["model sha256", str(result.get("model_sha256") or "-")],
        ["compute images/s", format_number(speed.get("compute_images_per_s"), 3)],
        ["end-to-end images/s", format_number(speed.get("end_to_end_images_per_s"), 3)],
        ["synthetic inputs", synthetic_note(result) or "no"],
    ]
    return ["", ""], rows


def summary_title(result: Mapping) -> str:
    backend = result.get("backend") or "predictions"
    return f"DeepLabV3 on Cityscapes {split_of(result)}: {backend}, {result.get('num_images')} images"


def split_of(result: Mapping) -> str:
    return str(((result.get("config") or {}).get("dataset") or {}).get("split") or "val")


def warning_text(result: Mapping) -> str:
    note = synthetic_note(result)
    if not note:
        return ""
    return (
        f"SYNTHETIC inputs ({note}): this run only shows that every stage works; its figures say "
        "nothing about the model and are not comparable with the references."
    )


def runtime_rows(benchmarks: Sequence[tuple[str, float, float]]) -> tuple[list[str], list[list[str]]]:
    header = ["job (benchmark file)", "wall-clock (s)", "peak memory, max_rss (MB)"]
    return header, [
        [label, format_number(seconds, 1), format_number(memory, 0)] for label, seconds, memory in benchmarks
    ]


def summary_markdown(result: Mapping, benchmarks: Sequence[tuple[str, float, float]] = (), stamp: str = "") -> str:
    """The summary table in Markdown; ``stamp``: what it was made for (Stamp.sentence), under the title."""
    lines = [f"# {summary_title(result)}", ""] + ([f"_{stamp}_", ""] if stamp else [])
    if warning_text(result):
        lines += [f"> **{warning_text(result)}**", ""]
    lines += ["## Accuracy", "", *markdown_table(*metric_rows(result)), ""]
    lines += ["References: the Ascend model-zoo guide (mIoU only; aAcc and mAcc are not published).", ""]
    lines += ["## Per class", "", *markdown_table(*class_rows(result)), ""]
    lines += ["## Run", "", *markdown_table(["what", "value"], run_rows(result)[1]), ""]
    if benchmarks:
        lines += ["## Runtime", "", *markdown_table(*runtime_rows(benchmarks)), ""]
    return "\n".join(lines)


def summary_html(result: Mapping, benchmarks: Sequence[tuple[str, float, float]] = (), stamp: str = "") -> str:
    warning = f'<p class="warning">{html.escape(warning_text(result))}</p>' if warning_text(result) else ""
    made_for = f'<p class="stamp">{html.escape(stamp)}</p>' if stamp else ""
    return html_page(
        summary_title(result),
        f"{made_for}{warning}"
        f"<h2>Accuracy</h2>{html_table(*metric_rows(result))}"
        "<p>References: the Ascend model-zoo guide (mIoU only; aAcc and mAcc are not published).</p>"
        f"<h2>Per class</h2>{html_table(*class_rows(result), swatches=PALETTE)}"
        f"<h2>Run</h2>{html_table(*run_rows(result))}"
        + (f"<h2>Runtime</h2>{html_table(*runtime_rows(benchmarks))}" if benchmarks else ""),
    )
