"""The figures: per-class IoU, the confusion matrix, example frames (image | ground truth | prediction), the
jobs' time and memory, and the validation matrix (mIoU delta, pixel agreement and images/s per cell).
Every figure of a run on synthetic inputs carries a banner saying so."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from deeplabv3_pipeline.data.cityscapes import (
    CLASS_NAMES,
    NUM_CLASSES,
    PALETTE,
)
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import write_atomic
from deeplabv3_pipeline.report.stamp import Stamp
from deeplabv3_pipeline.report.summary import (
    format_number,
    per_class_values,
    references_for,
    summary_title,
    synthetic_note,
)

LOG = logging.getLogger("report")


DPI = 110


SYNTHETIC_COLOUR = "#b00020"


def normalise_rows(counts: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Confusion counts -> percent of each row (label class); rows without pixels are NaN."""
    matrix = np.asarray(counts, dtype=np.float64)
    if matrix.shape != (NUM_CLASSES, NUM_CLASSES):
        raise UserError(f"confusion matrix is {matrix.shape}, expected {NUM_CLASSES}x{NUM_CLASSES}")
    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, matrix / totals * 100.0, np.nan)


def colorize(classes: np.ndarray) -> np.ndarray:
    """trainIds (HxW) -> RGB with the Cityscapes palette; 255 and any other id outside 0..18 are black."""
    classes = np.asarray(classes)
    rgb = np.zeros((*classes.shape, 3), dtype=np.uint8)
    valid = (classes >= 0) & (classes < NUM_CLASSES)
    rgb[valid] = PALETTE[classes[valid].astype(np.intp)]
    return rgb


def save(figure: Figure, path: Path, stamp: str = "") -> Path:
    """Write the figure as a PNG, with its stamp (what it was made for: report/stamp.py) along the bottom."""
    if stamp:
        figure.text(0.002, 0.002, stamp, fontsize=7, color="dimgray", ha="left", va="bottom")
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI, format="png")
    write_atomic(path, buffer.getvalue())
    LOG.info("wrote %s", path)
    return path


def add_synthetic_banner(figure: Figure, result: Mapping) -> None:
    """A red line above the figure when the inputs are synthetic."""
    note = synthetic_note(result)
    if note:
        figure.suptitle(
            f"SYNTHETIC inputs ({note}): these figures say nothing about the model; no reference lines",
            color=SYNTHETIC_COLOUR,
            fontsize=11,
            fontweight="bold",
        )


def plot_per_class_iou(result: Mapping, path: Path, stamp: str = "") -> Path:
    iou = per_class_values(result, "IoU")
    figure = Figure(figsize=(13, 6.2), layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(NUM_CLASSES)
    ax.bar(positions, np.nan_to_num(iou), color=PALETTE / 255.0, edgecolor="black", linewidth=0.6)
    for position, value in zip(positions, iou, strict=True):
        ax.text(
            position,
            (0 if np.isnan(value) else value) + 1,
            format_number(value, 1),
            ha="center",
            fontsize=8,
            zorder=5,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85},
        )
    if result.get("mIoU") is not None:
        ax.axhline(result["mIoU"], color="black", linewidth=1.6, label=f"this run: mIoU {result['mIoU']:.2f}%")
    styles = (("tab:red", "--"), ("tab:orange", ":"), ("tab:green", "-."))
    for (name, value), (colour, style) in zip(references_for(result), styles, strict=False):
        ax.axhline(value, color=colour, linestyle=style, linewidth=1.4, label=f"reference {name}: {value:.2f}%")
    ax.set_xticks(positions, CLASS_NAMES, rotation=40, ha="right")
    ax.set_xlim(-0.7, NUM_CLASSES - 0.3)
    ax.set_ylim(0, 105)
    ax.set_ylabel("IoU (%)")
    ax.set_xlabel("Cityscapes class (trainId order; n/a = absent from labels and predictions)")
    ax.set_title(f"Per-class IoU: {summary_title(result)}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    figure.legend(loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    add_synthetic_banner(figure, result)
    return save(figure, path, stamp)


def plot_confusion_matrix(result: Mapping, path: Path, stamp: str = "") -> Path:
    percent = normalise_rows(result["confusion_matrix"]["counts"])
    figure = Figure(figsize=(11.5, 10), layout="constrained")
    ax = figure.add_subplot()
    palette = colormaps["Blues"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(percent), cmap=palette, vmin=0, vmax=100, interpolation="nearest")
    for row in range(NUM_CLASSES):
        for column in range(NUM_CLASSES):
            value = percent[row, column]
            if not np.isnan(value) and (value >= 1 or (row == column and value > 0)):
                ax.text(
                    column,
                    row,
                    f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 55 else "black",
                )
    empty = [row for row in range(NUM_CLASSES) if np.isnan(percent[row]).all()]
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=50, ha="right", fontsize=9)
    ax.set_yticks(
        range(NUM_CLASSES),
        [f"{name} (no pixels)" if row in empty else name for row, name in enumerate(CLASS_NAMES)],
        fontsize=9,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class (label)")
    ax.set_title(
        f"Confusion matrix, each row normalised to 100% of its label pixels\n{summary_title(result)}"
        + ("; grey rows: class absent from the labels" if empty else "")
    )
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("share of the row's label pixels predicted as the column class (%)")
    add_synthetic_banner(figure, result)
    return save(figure, path, stamp)


def plot_examples(
    result: Mapping,
    frames: Sequence[tuple[str, str]],
    examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    stamp: str = "",
) -> Path:
    """One row per frame: image | ground truth | prediction (``examples`` as read_example returns them)."""
    height, width = examples[0][1].shape
    panel_width = 5.0
    panel_height = panel_width * height / width
    figure = Figure(figsize=(3 * panel_width + 0.6, len(frames) * (panel_height + 0.55) + 1.6), layout="constrained")
    axes = figure.subplots(len(frames), 3, squeeze=False)
    present: set[int] = set()
    for row, ((frame, tag), (image, label, prediction)) in enumerate(zip(frames, examples, strict=True)):
        present |= set(np.unique(label).tolist()) | set(np.unique(prediction).tolist())
        metrics = result["per_image"][frame]
        panels = (image, colorize(label), colorize(prediction))
        titles = (
            f"{frame}: image",
            "ground truth (trainIds)",
            f"prediction ({result.get('backend') or 'model'}): {tag} mIoU {format_number(metrics.get('mIoU'))}%, "
            f"aAcc {format_number(metrics.get('aAcc'))}%",
        )
        for column, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            ax: Axes = axes[row][column]
            ax.imshow(panel, interpolation="nearest" if column else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=10)
    handles = [
        Patch(facecolor=PALETTE[index] / 255.0, edgecolor="black", label=name)
        for index, name in enumerate(CLASS_NAMES)
        if index in present
    ]
    if 255 in present:
        handles.append(Patch(facecolor="black", edgecolor="black", label="ignored (255)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=9)
    figure.suptitle(
        f"Frames of lowest and highest per-image mIoU: {summary_title(result)}"
        + (f"\nSYNTHETIC inputs ({synthetic_note(result)})" if synthetic_note(result) else ""),
        fontsize=12,
        color=SYNTHETIC_COLOUR if synthetic_note(result) else "black",
    )
    return save(figure, path, stamp)


def plot_runtimes(benchmarks: Sequence[tuple[str, float, float]], path: Path, title: str, stamp: str = "") -> Path:
    figure = Figure(figsize=(12, 1.6 + 0.42 * max(len(benchmarks), 1)), layout="constrained")
    time_ax, memory_ax = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    if not benchmarks:
        time_ax.text(0.5, 0.5, "no benchmark files", ha="center", va="center", transform=time_ax.transAxes)
    labels = [label for label, _, _ in benchmarks]
    seconds = np.array([value for _, value, _ in benchmarks])
    memory = np.array([value for _, _, value in benchmarks])
    positions = np.arange(len(benchmarks))
    time_ax.barh(positions, np.nan_to_num(seconds), color="tab:blue")
    memory_ax.barh(positions, np.nan_to_num(memory), color="tab:gray")
    for position, value in zip(positions, seconds, strict=True):
        time_ax.text(value if not np.isnan(value) else 0, position, f" {format_number(value, 1)} s", va="center")
    for position, value in zip(positions, memory, strict=True):
        memory_ax.text(value if not np.isnan(value) else 0, position, f" {format_number(value, 0)} MB", va="center")
    time_ax.set_yticks(positions, labels)
    time_ax.invert_yaxis()
    total = float(np.nansum(seconds)) if benchmarks else 0.0
    time_ax.set_xlabel("wall-clock time (s)")
    time_ax.set_title(f"Runtime per job (sum {total:.1f} s)")
    memory_ax.set_xlabel("peak resident memory, max_rss (MB)")
    memory_ax.set_title("Peak memory per job")
    for ax, values in ((time_ax, seconds), (memory_ax, memory)):
        finite = values[~np.isnan(values)] if values.size else values
        ax.set_xlim(0, (float(finite.max()) if finite.size else 1.0) * 1.25 or 1.0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    figure.suptitle(title)
    return save(figure, path, stamp)


def plot_matrix(matrix: Mapping, path: Path) -> Path:  # stamped with matrix.json's stamp
    """The matrix's cells side by side: mIoU delta to the model's reference, pixel disagreement, speed."""
    reference = matrix.get("reference", "?")
    rows: Sequence[Mapping] = matrix.get("rows") or []
    if not rows:
        raise UserError("matrix.json lists no cells")
    positions = np.arange(len(rows))

    def values(key: str, scale: float = 1.0) -> np.ndarray:
        return np.array([np.nan if row.get(key) is None else row[key] * scale for row in rows])

    figure = Figure(figsize=(max(15, 1.6 * len(rows) * 3), 5.5), layout="constrained")
    delta_ax, agreement_ax, speed_ax = figure.subplots(1, 3)
    colours = [
        "tab:purple" if row["variant"] == reference else "tab:red" if row.get("gate") == "fail" else "tab:blue"
        for row in rows
    ]

    delta = values("delta_miou")
    delta_ax.bar(positions, np.nan_to_num(delta), color=colours)
    delta_ax.axhline(0, color="black", linewidth=0.8)
    span = float(np.nanmax(np.abs(delta))) if not np.isnan(delta).all() else 0.0
    delta_ax.set_ylim(-max(span * 1.4, 0.1), max(span * 1.4, 0.1))
    for position, row, value in zip(positions, rows, delta, strict=True):
        miou = row.get("miou")
        # where the cell lost accuracy, and whether that matters: its gate and the classes that dropped most
        gate = f"\ngate: {row['gate']}" if row.get("gate") else ""
        dropped = "\n" + row["classes_dropped_most"].replace(", ", "\n") if row.get("classes_dropped_most") else ""
        delta_ax.text(
            position,
            0 if np.isnan(value) else value,
            ("n/a" if np.isnan(value) else f"{value:+.2f} pp") + f"\n(mIoU {format_number(miou)}){gate}{dropped}",
            ha="center",
            va="bottom" if np.isnan(value) or value >= 0 else "top",
            fontsize=9,
        )
    delta_ax.set_ylabel(f"mIoU - mIoU of the model's {reference} (percentage points)")
    delta_ax.set_title("mIoU difference from the reference")

    differing = 100.0 - values("pixel_agreement", 100.0)
    agreement_ax.bar(positions, np.nan_to_num(differing), color=colours)
    for position, value in zip(positions, differing, strict=True):
        text = "n/a" if np.isnan(value) else f"{value:.4f}% differ\n({100 - value:.4f}% agree)"
        agreement_ax.text(position, 0 if np.isnan(value) else value, text, ha="center", va="bottom", fontsize=9)
    worst = float(np.nanmax(differing)) if not np.isnan(differing).all() else 0.0
    agreement_ax.set_ylim(0, max(worst * 1.35, 0.01))
    agreement_ax.set_ylabel(f"pixels whose class differs from {reference}'s (%)")
    agreement_ax.set_title("Pixel disagreement with the reference (0 = identical)")

    width = 0.38
    for offset, key, label, colour in (
        (-width / 2, "compute_images_per_s", "compute only", "tab:green"),
        (width / 2, "end_to_end_images_per_s", "end to end", "tab:olive"),
    ):
        speed = values(key)
        speed_ax.bar(positions + offset, np.nan_to_num(speed), width, label=label, color=colour)
        for position, value in zip(positions, speed, strict=True):
            speed_ax.text(
                position + offset,
                0 if np.isnan(value) else value,
                format_number(value, 2),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    speed_ax.set_ylabel("images per second")
    speed_ax.set_title("Throughput")
    speed_ax.legend(fontsize=9)
    speed = np.concatenate([values("compute_images_per_s"), values("end_to_end_images_per_s")])
    top = float(np.nanmax(speed)) if not np.isnan(speed).all() else 1.0
    speed_ax.set_ylim(0, top * 1.2)

    tick_labels = [f"{row['model']}\n{row['variant']}" for row in rows]
    for ax in (delta_ax, agreement_ax, speed_ax):
        ax.set_xticks(positions, tick_labels, fontsize=8)
        ax.set_xlabel("cell (model, variant)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    images = sorted({row.get("num_images") for row in rows}, key=str)
    title = f"Validation matrix: each model's cells against its {reference} ({', '.join(map(str, images))} images)"
    if matrix.get("note"):
        title += f"\n{matrix['note']}"
    figure.suptitle(title)
    stamp = Stamp.from_json(matrix["stamp"]).sentence() if matrix.get("stamp") else ""
    return save(figure, path, stamp)


def side_name(side: Mapping) -> str:
    """One side of a layer comparison as a title says it: ``deeplabv3_sim_bs1_int8.onnx (onnxruntime int8)``."""
    return f"{Path(side['model']).name} ({side['backend']} {side['precision']})"


def plot_layers(record: Mapping, path: Path) -> Path:
    """A per-layer comparison (scripts/compare_layers.py) along the network: each tensor's cosine similarity
    and relative Euclidean distance to the reference's, ait's thresholds, the first tensor past them marked."""
    rows: Sequence[Mapping] = record.get("rows") or []
    if not rows:
        raise UserError("the layer comparison holds no tensor")
    positions = np.arange(len(rows))

    def values(key: str) -> np.ndarray:
        return np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=float)

    figure = Figure(figsize=(max(10, 0.12 * len(rows)), 6.5), layout="constrained")
    cosine_ax, distance_ax = figure.subplots(2, 1, sharex=True)
    thresholds = record.get("thresholds") or {}
    for ax, key, label in (
        (cosine_ax, "cosine_similarity", "cosine similarity"),
        (distance_ax, "relative_euclidean", "relative Euclidean distance"),
    ):
        ax.plot(positions, values(key), marker=".", color="tab:blue", linewidth=1)
        if key in thresholds:
            ax.axhline(thresholds[key]["limit"], color="tab:orange", linestyle="--", label="ait's threshold")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    first = record.get("first_past")
    if first:
        for ax in (cosine_ax, distance_ax):
            ax.axvline(first["index"], color="tab:red", linewidth=2)
        cosine_ax.annotate(
            f"first past: #{first['index']} {first['tensor']}\nthe error {record.get('origin')}",
            (first["index"], float(np.nanmin(values("cosine_similarity")))),
            xytext=(8, 8),
            textcoords="offset points",
            color="tab:red",
            fontsize=9,
        )
    cosine_ax.legend(fontsize=9, loc="lower left")
    distance_ax.set_xlabel("tensor, in the reference graph's order")
    distance_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    verdict = "none past the thresholds" if not first else f"first past the thresholds: #{first['index']}"
    cosine_ax.set_title(
        f"{side_name(record['model'])} against {side_name(record['reference'])}, {len(rows)} tensors: {verdict}"
    )
    return save(figure, path)
