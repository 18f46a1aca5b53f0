"""The validation matrix: one row per cell (model x variant) from the cells' result.json files.

Each row compares the cell with the reference variant of its own model, frame by frame, through the
prediction files each result.json records it evaluated (pixel agreement, overall and worst frame), class
by class (IoU minus the reference's), and with the mIoU mmseg publishes for the model's config
(deeplabv3_pipeline/model/zoo.py); and says whether the cell passes its accuracy gate against the
reference (:class:`Gate`). Pure functions: scripts/matrix.py reads and writes the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.metrics import pixel_agreement
from deeplabv3_pipeline.report.tables import csv_table, markdown_table

# The columns of results/matrix.csv and .md, in order (matrix.json rows hold them and per_image_agreement).
COLUMNS = (
    "model",
    "variant",
    "backend",
    "precision",
    "inference_precision",
    "miou",
    "aacc",
    "delta_miou",
    "published_miou",
    "delta_published_miou",
    "pixel_agreement",
    "worst_frame_agreement",
    "worst_frame",
    "classes_dropped_most",
    "float_layers",
    "float_layer_names",
    "gate",
    "gate_reason",
    "compute_images_per_s",
    "end_to_end_images_per_s",
    "gpu",
    "num_images",
    "result",
)


@dataclass(frozen=True)
class Gate:
    """A cell's accuracy gate against its model's reference cell (config ``matrix.gate``); None turns a
    check off. ``relative``: the cell's mIoU at least this share of the reference's (MLPerf's 99 % of the
    fp32 reference); ``max_drop``: at most this many mIoU points below it (mmdeploy's regression test);
    ``min_pixel_agreement``: at least this share of pixels of the same class as the reference's."""

    relative: float | None = None
    max_drop: float | None = None
    min_pixel_agreement: float | None = None

    @property
    def checks_anything(self) -> bool:
        return any(value is not None for value in (self.relative, self.max_drop, self.min_pixel_agreement))

    def reasons(self, miou: float | None, reference_miou: float | None, agreement: float | None) -> list[str]:
        """Why a cell with these figures fails the gate (none: it passes). mIoUs in percent, 2 decimals;
        each compared exactly with its bound, and printed with the digits that show why."""
        gates_miou = (self.relative, self.max_drop) != (None, None)
        if gates_miou and reference_miou is None:
            return ["the reference cell has no mIoU: nothing to gate against"]
        if gates_miou and miou is None:
            return [f"no mIoU, where the reference has {reference_miou}"]
        reasons = []
        if self.relative is not None:
            floor = self.relative * reference_miou
            if miou < floor:
                reasons.append(
                    f"mIoU {miou} is below {self.relative:g} x the reference's {reference_miou} ({floor:.6g})"
                )
        if self.max_drop is not None:
            drop = rounded_difference(reference_miou, miou)  # (50.1 - 49.1 is 1.0000000000000014 in floats)
            if drop > self.max_drop:
                reasons.append(
                    f"mIoU {miou} is {drop:.2f} points below the reference's {reference_miou} "
                    f"(max_drop {self.max_drop:g})"
                )
        if self.min_pixel_agreement is not None and agreement is not None and agreement < self.min_pixel_agreement:
            reasons.append(f"pixel agreement {agreement:.6g} with the reference is below {self.min_pixel_agreement:g}")
        return reasons


def class_iou_deltas(result: Mapping, reference: Mapping) -> dict[str, float | None]:
    """Per class: the cell's IoU minus the reference cell's, in points (None where either has no IoU: a
    class absent from the labels and both predictions)."""
    theirs = reference.get("per_class") or {}
    return {
        name: rounded_difference(ours.get("IoU"), (theirs.get(name) or {}).get("IoU"))
        for name, ours in (result.get("per_class") or {}).items()
    }


def classes_dropped_most(deltas: Mapping[str, float | None], count: int = 3) -> str | None:
    """The ``count`` classes whose IoU dropped most against the reference (``road -3.20, wall -1.05``), or
    None where none dropped."""
    dropped = sorted((delta, name) for name, delta in deltas.items() if delta is not None and delta < 0)
    return ", ".join(f"{name} {delta:.2f}" for delta, name in dropped[:count]) or None


def failing_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    return [row for row in rows if row.get("gate") == "fail"]


def gate_failure(rows: Sequence[Mapping], source: str) -> str:
    """One line naming the cells of ``rows`` that fail their gate and why ("" where none fails)."""
    failing = failing_rows(rows)
    if not failing:
        return ""
    cells = "; ".join(f"{row['model']} {row['variant']}: {row['gate_reason']}" for row in failing)
    return f"{len(failing)} cell(s) of {source} fail their accuracy gate (matrix.gate): {cells}"


def frame_agreement(predictions: Mapping[str, str], reference: Mapping[str, str]) -> dict[str, float]:
    """Per frame: the share of pixels whose class equals the reference's (both results' recorded files)."""
    if set(predictions) != set(reference):
        different = sorted(set(predictions) ^ set(reference))
        raise UserError(
            f"the cells were evaluated on different frames (e.g. {different[0]}): rerun them with one config"
        )
    agreement = {}
    for frame in sorted(reference):
        ours = np.fromfile(predictions[frame], dtype=np.int64)
        theirs = np.fromfile(reference[frame], dtype=np.int64)
        try:
            agreement[frame] = pixel_agreement(ours, theirs)
        except ValueError:
            raise UserError(
                f"{predictions[frame]} and {reference[frame]} differ in size: made at different shapes?"
            ) from None
    return agreement


def rounded_difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, 2)


def model_config_of(result: Mapping) -> str | None:
    """The mmseg config the cell's model was made from, as its result.json records it."""
    model = ((result.get("config") or {}).get("model")) or {}
    return model.get("config")


def mixed_search(result: Mapping) -> Mapping:
    """The mixed-precision search of a ``-mixed`` cell's model, as its model record in result.json holds it
    (empty for another cell)."""
    for record in result.values():
        if isinstance(record, Mapping) and isinstance(record.get("mixed"), Mapping) and record["mixed"]:
            return record["mixed"]
    return {}


def gpu_name(speed: Mapping) -> str | None:
    """The GPU a cell's speed figures are of: its summary's, or its shards' (each records its own)."""
    shards = [shard.get("gpu") or {} for shard in speed.get("per_shard") or []]
    names = {(speed.get("gpu") or {}).get("name"), *(shard.get("name") for shard in shards)} - {None}
    return ", ".join(sorted(names)) or None


def matrix_row(
    path: str,
    result: Mapping,
    reference: Mapping,
    published: float | None,
    agreement: Mapping[str, float],
    gate: Gate = Gate(),
) -> dict:
    speed = result.get("throughput") or {}
    worst = min(agreement, key=agreement.__getitem__) if agreement else None
    mean_agreement = float(np.mean(list(agreement.values()))) if agreement else None
    deltas = class_iou_deltas(result, reference)
    reasons = gate.reasons(result["mIoU"], reference["mIoU"], mean_agreement)
    float_layers = mixed_search(result).get("float_layers")
    return {
        "model": result["model"],
        "variant": result["variant"],
        "backend": result["backend"],
        "precision": (result.get("config") or {}).get("precision"),
        "inference_precision": result.get("inference_precision"),
        "miou": result["mIoU"],
        "aacc": result["aAcc"],
        "delta_miou": rounded_difference(result["mIoU"], reference["mIoU"]),
        "published_miou": published,
        "delta_published_miou": rounded_difference(result["mIoU"], published),
        "pixel_agreement": mean_agreement,
        "worst_frame_agreement": agreement[worst] if worst else None,
        "worst_frame": worst,
        "classes_dropped_most": classes_dropped_most(deltas),
        # a -mixed cell's layers kept in float (count and ONNX node names): what its accuracy cost
        "float_layers": None if float_layers is None else len(float_layers),
        "float_layer_names": None if float_layers is None else "; ".join(float_layers) or "none",
        "gate": None if not gate.checks_anything else "fail" if reasons else "pass",
        "gate_reason": "; ".join(reasons) or None,
        "compute_images_per_s": speed.get("compute_images_per_s"),
        "end_to_end_images_per_s": speed.get("end_to_end_images_per_s"),
        # the GPU the speed is of (TensorRT, PyTorch on CUDA); none: the CPU or NPU the precision_evidence names
        "gpu": gpu_name(speed),
        "num_images": result["num_images"],
        "result": path,
        "synthetic_inputs": result.get("synthetic_inputs"),
        "per_image_agreement": dict(agreement),
        "delta_class_iou": deltas,
    }


def matrix_rows(
    results: Mapping[str, Mapping],
    reference_variant: str,
    published: Callable[[str], float | None],
    gate: Gate = Gate(),
) -> list[dict]:
    """One row per result (path -> result.json), in the given order. ``published``: config -> the
    published mIoU (None: not a model-zoo entry); ``gate``: what each cell must keep of its reference's."""
    references = {result["model"]: result for result in results.values() if result.get("variant") == reference_variant}
    rows = []
    for path, result in results.items():
        for key in ("model", "variant", "predictions"):
            if not result.get(key):
                raise UserError(f"{path} records no {key}: evaluate that cell again with this version")
        reference = references.get(result["model"])
        if reference is None:
            raise UserError(
                f"no result of model {result['model']} with the reference variant {reference_variant} "
                "among the results: add it (matrix.reference is always run)"
            )
        config = model_config_of(result)
        agreement = frame_agreement(result["predictions"], reference["predictions"])
        rows.append(matrix_row(path, result, reference, published(config) if config else None, agreement, gate))
    return rows


# shares of pixels get 4 decimals (0.9999 is not 1.0000); percentages and rates 2
FOUR_DECIMALS = ("pixel_agreement", "worst_frame_agreement")


# the names shown in matrix.md of a long list (matrix.csv and .json hold them all)
SHOWN_NAMES = 3


def format_value(column: str, value: object) -> str:
    if column == "float_layer_names" and isinstance(value, str):
        names = value.split("; ")
        return "; ".join(names[:SHOWN_NAMES]) + (f" (+{len(names) - SHOWN_NAMES})" if len(names) > SHOWN_NAMES else "")
    if isinstance(value, float):
        return f"{value:.4f}" if column in FOUR_DECIMALS else f"{value:.2f}"
    return "-" if value is None else str(value)


def markdown(rows: Sequence[Mapping]) -> str:
    """The matrix as a Markdown table (readable in a terminal, pasteable into a report)."""
    shown = [column for column in COLUMNS if column != "result"]
    return "\n".join(markdown_table(shown, [[format_value(column, row[column]) for column in shown] for row in rows]))


def csv_text(rows: Sequence[Mapping]) -> str:
    return csv_table(COLUMNS, rows)


def synthetic_note(rows: Sequence[Mapping]) -> str:
    """A line saying which inputs were synthetic, where any were ("" for a real run)."""
    synthetic = sorted({row["synthetic_inputs"] for row in rows if row.get("synthetic_inputs")})
    if not synthetic:
        return ""
    return f"SYNTHETIC {', '.join(synthetic).upper()}: these figures say nothing about the models' accuracy."
