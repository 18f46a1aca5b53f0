"""Mixed precision: the fewest layers kept in float so that a quantized (or fp16) model meets an accuracy
target on check frames it was not calibrated on.

What every backend's search shares is here: the target (config ``int8.target`` / ``fp16.target``: the
pixel agreement with the fp32 model, the mIoU drop where the frames have labels), its bounds
(``int8.search``: evaluations, float layers), the figures of one candidate model, the ranking of the
layers by the error each adds in the per-layer comparison, and the search over a ranked list:

1. the plain model (no layer in float): where it meets the target, nothing is kept in float;
2. the most sensitive 1, 2, 4, ... layers in float until the target holds (at most ``max_float_layers``),
   then the fewest of that prefix by bisection (Ascend AMCT's accuracy-based calibration bisects too);
3. each layer of it dropped again, the least sensitive first, where the target still holds without it:
   the result is any set of layers, not only a prefix of the ranking.

Every candidate is evaluated once (a set asked twice is looked up), in a fixed order from a fixed ranking:
the same inputs give the same result. Where the target is not met within the bounds the error names the
best figures reached and with which layers; where even every candidate layer in float misses it, the
error says the reference itself disagrees (a broken reference, not a precision problem).

OpenVINO runs NNCF's own search (``quantize_with_accuracy_control``) with :meth:`Target.margin` as its
metric (backends/openvino/quantize.py); ONNX Runtime and TensorRT's Q/DQ model use :func:`search_float_layers`
(backends/onnxruntime/mixed.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.errors import UserError

# ops a layer's output may pass through before the comparison sees it (ONNX Runtime fuses Conv+Relu and
# keeps the Relu's tensor)
PASS_THROUGH_OPS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish")


@dataclass(frozen=True)
class Target:
    """What a mixed model must reach on the check frames (config ``int8.target``, ``fp16.target``):
    ``min_pixel_agreement`` with the fp32 model (a fraction), ``max_miou_drop`` below the fp32 model's
    mIoU (points, on the frames' labels). None: not asked for; at least one is."""

    min_pixel_agreement: float | None = 0.99
    max_miou_drop: float | None = None

    def check(self, keys: Mapping[str, str], labelled: bool) -> None:
        """A :class:`UserError` for a target that cannot be judged, naming the key or flag of each part
        (``keys``: field name -> what the user sets, e.g. ``int8.target.max_miou_drop``)."""
        agreement, drop = keys["min_pixel_agreement"], keys["max_miou_drop"]
        if self.min_pixel_agreement is None and self.max_miou_drop is None:
            raise UserError(f"a mixed-precision target needs {agreement} or {drop} (neither is set)")
        if self.min_pixel_agreement is not None and not 0 < self.min_pixel_agreement <= 1:
            raise UserError(f"{agreement} must be a fraction in (0, 1], got {self.min_pixel_agreement}")
        if self.max_miou_drop is not None and self.max_miou_drop < 0:
            raise UserError(f"{drop} must be 0 or more (mIoU points), got {self.max_miou_drop}")
        if self.max_miou_drop is not None and not labelled:
            raise UserError(
                f"{drop} needs labelled check frames, and these have none: leave {drop} unset and give "
                f"{agreement} (the pixel agreement with the fp32 model) instead"
            )

    def shortfalls(self, figures: Figures) -> list[str]:
        """What ``figures`` miss of the target, one phrase each (none: met)."""
        missed = []
        if self.min_pixel_agreement is not None and figures.pixel_agreement < self.min_pixel_agreement:
            missed.append(f"pixel agreement {figures.pixel_agreement:.4%} < {self.min_pixel_agreement:.4%}")
        if self.max_miou_drop is not None and figures.miou_drop is not None and figures.miou_drop > self.max_miou_drop:
            missed.append(f"mIoU drop {figures.miou_drop:.2f} > {self.max_miou_drop:g} points")
        return missed

    def met(self, figures: Figures) -> bool:
        return not self.shortfalls(figures)

    def margin(self, figures: Figures) -> float:
        """How far ``figures`` are inside the target (negative: outside), the smallest over its parts in
        fractions (an mIoU point is 0.01). The fp32 model's own margin is :meth:`reference_margin`, and
        ``reference_margin - margin <= reference_margin`` iff the target is met: NNCF's ``max_drop``."""
        parts = []
        if self.min_pixel_agreement is not None:
            parts.append(figures.pixel_agreement - self.min_pixel_agreement)
        if self.max_miou_drop is not None and figures.miou_drop is not None:
            parts.append((self.max_miou_drop - figures.miou_drop) / 100)
        return min(parts)

    def reference_margin(self) -> float:
        return self.margin(Figures(pixel_agreement=1.0, miou_drop=0.0 if self.max_miou_drop is not None else None))


@dataclass(frozen=True)
class Bounds:
    """How far a search may go (config ``int8.search``): candidate models evaluated, layers kept in float."""

    max_evaluations: int = 24
    max_float_layers: int = 16

    def check(self, keys: Mapping[str, str]) -> None:
        """A :class:`UserError` naming the key or flag (``keys``: field name -> it) of a bound below 1."""
        for name, value in asdict(self).items():
            if value < 1:
                raise UserError(f"{keys[name]} must be at least 1, got {value}")


@dataclass(frozen=True)
class Figures:
    """One candidate model on the check frames: its mean pixel agreement with the fp32 model, and its mIoU
    drop below the fp32 model's in points where the frames have labels (else None)."""

    pixel_agreement: float
    miou_drop: float | None = None
    miou: float | None = None


@dataclass(frozen=True)
class Trial:
    float_layers: tuple[str, ...]
    figures: Figures
    met: bool
    seconds: float


@dataclass
class SearchResult:
    """The layers kept in float, their figures, every candidate evaluated (in order) and the search's time."""

    float_layers: tuple[str, ...]
    figures: Figures
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The record's ``mixed`` part (the JSON beside the model)."""
        return {
            "float_layers": list(self.float_layers),
            "figures": asdict(self.figures),
            "evaluations": len(self.trials),
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "trials": [
                {
                    "float_layers": list(trial.float_layers),
                    **asdict(trial.figures),
                    "met": trial.met,
                    "seconds": round(trial.seconds, 3),
                }
                for trial in self.trials
            ],
        }


class _Exhausted(Exception):
    """max_evaluations reached."""


def search_float_layers(
    ranked: Sequence[str],
    evaluate: Callable[[tuple[str, ...]], Figures],
    target: Target,
    bounds: Bounds,
    where: str = "int8",
) -> SearchResult:
    """The fewest of the ``ranked`` layers (most sensitive first) kept in float for ``evaluate``'s model to
    meet ``target``, within ``bounds`` (the module's docstring says how). A :class:`UserError` when it
    cannot, naming the best reached; ``where``: the config section its advice names."""
    start = time.perf_counter()
    rank = {name: index for index, name in enumerate(ranked)}
    trials: dict[tuple[str, ...], Trial] = {}

    def trial(layers: Sequence[str]) -> Trial:
        key = tuple(sorted(layers, key=rank.__getitem__))
        if key not in trials:
            if len(trials) >= bounds.max_evaluations:
                raise _Exhausted
            begun = time.perf_counter()
            figures = evaluate(key)
            trials[key] = Trial(key, figures, target.met(figures), time.perf_counter() - begun)
        return trials[key]

    def result(best: Trial, notes: list[str]) -> SearchResult:
        return SearchResult(best.float_layers, best.figures, list(trials.values()), time.perf_counter() - start, notes)

    limit = min(bounds.max_float_layers, len(ranked))
    notes: list[str] = []
    try:
        plain = trial(())
        if plain.met:
            return result(plain, ["the plain model meets the target: no layer kept in float"])
        failing, meeting, size = 0, None, 1
        while meeting is None and failing < limit:  # grow: 1, 2, 4, ... layers
            size = min(size, limit)
            if trial(ranked[:size]).met:
                meeting = size
            else:
                failing, size = size, size * 2
        if meeting is None:
            raise _Unmet(limit)
        while meeting - failing > 1:  # the shortest prefix that meets the target
            middle = (failing + meeting) // 2
            if trial(ranked[:middle]).met:
                meeting = middle
            else:
                failing = middle
        best = trial(ranked[:meeting])
        for layer in reversed(best.float_layers):  # drop what is not needed, the least sensitive first
            fewer = [name for name in best.float_layers if name != layer]
            if fewer and trial(fewer).met:
                best = trial(fewer)
    except _Exhausted:
        met = [item for item in trials.values() if item.met]
        if not met:
            raise UserError(
                f"{where}: the target ({describe(target)}) was not met within {bounds.max_evaluations} evaluations "
                f"({where}.search.max_evaluations); {best_reached(trials.values(), target)}"
            ) from None
        best = min(met, key=lambda item: (len(item.float_layers), -target.margin(item.figures)))
        notes.append(f"stopped at {bounds.max_evaluations} evaluations ({where}.search.max_evaluations): fewer may do")
    except _Unmet as unmet:
        raise UserError(unmet_message(unmet.limit, ranked, trials, trial, target, bounds, where)) from None
    return result(best, notes)


class _Unmet(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit


def unmet_message(
    limit: int,
    ranked: Sequence[str],
    trials: Mapping[tuple[str, ...], Trial],
    trial: Callable[[Sequence[str]], Trial],
    target: Target,
    bounds: Bounds,
    where: str,
) -> str:
    """Why the search failed: every layer in float misses the target too (the reference disagrees), or the
    bounds stopped it (the best reached, and which bound to raise)."""
    best = best_reached(trials.values(), target)
    if limit < len(ranked):
        try:
            every = trial(ranked)
        except _Exhausted:
            every = None
        if every is not None and every.met:
            return (
                f"{where}: the target ({describe(target)}) needs more than {limit} layers in float "
                f"({where}.search.max_float_layers; every layer in float meets it); {best}"
            )
    else:
        every = trials.get(tuple(ranked))
    if every is not None and not every.met:
        return (
            f"{where}: the target ({describe(target)}) is not met even with every layer in float "
            f"({', '.join(target.shortfalls(every.figures))}): the fp32 reference disagrees with this model "
            "elsewhere (a broken reference or other check frames?), not a precision problem"
        )
    return (
        f"{where}: the target ({describe(target)}) was not met within {bounds.max_evaluations} evaluations "
        f"({where}.search.max_evaluations); {best}"
    )


def describe(target: Target) -> str:
    parts = []
    if target.min_pixel_agreement is not None:
        parts.append(f"pixel agreement >= {target.min_pixel_agreement:g}")
    if target.max_miou_drop is not None:
        parts.append(f"mIoU drop <= {target.max_miou_drop:g}")
    return ", ".join(parts)


def best_reached(trials: Sequence[Trial] | Any, target: Target) -> str:
    """'the best reached: <figures> with <n> layers in float (<names>)'."""
    best = max(trials, key=lambda item: (target.margin(item.figures), -len(item.float_layers)))
    figures = best.figures
    text = f"the best reached: pixel agreement {figures.pixel_agreement:.4%}"
    if figures.miou_drop is not None:
        text += f", mIoU drop {figures.miou_drop:.2f}"
    names = ", ".join(best.float_layers[:8]) + (", ..." if len(best.float_layers) > 8 else "")
    count = len(best.float_layers)
    return text + f" with {count} layer{'' if count == 1 else 's'} in float" + (f" ({names})" if names else "")


@dataclass(frozen=True)
class MixedSearch:
    """What a quantizer's mixed-precision search is asked: the frames it judges on, the target, the bounds."""

    check: CheckFrames
    target: Target
    bounds: Bounds

    def record(self) -> dict[str, Any]:
        return {
            "target": asdict(self.target),
            "bounds": asdict(self.bounds),
            "check_files": [str(path) for path in self.check.files],
            "labelled": self.check.labels is not None,
        }


TARGET_FLAGS = {"min_pixel_agreement": "--target-agreement", "max_miou_drop": "--target-miou-drop"}
BOUND_FLAGS = {"max_evaluations": "--max-evaluations", "max_float_layers": "--max-float-layers"}


def add_mixed_arguments(parser: argparse.ArgumentParser, how: str) -> None:
    """The flags of a stage CLI that asks for a mixed model (scripts/quantize_onnx.py, convert_fp16.py):
    the target, the check images' labels and the bounds; ``how``: what this CLI's search does."""
    group = parser.add_argument_group(
        "mixed precision",
        "with a target, the fewest layers are kept in float for the model to meet it on the check images; " + how,
    )
    group.add_argument(
        "--target-agreement", type=float, metavar="FRACTION", help="pixel agreement with the fp32 model, at least"
    )
    group.add_argument(
        "--target-miou-drop", type=float, metavar="POINTS", help="mIoU below the fp32 model's, at most (--check-labels)"
    )
    group.add_argument("--check-labels", type=Path, nargs="+", help="the check images' trainIds PNGs, or folders")
    defaults = Bounds()
    group.add_argument(
        "--max-evaluations", type=int, default=defaults.max_evaluations, help="candidate models evaluated, at most"
    )
    group.add_argument(
        "--max-float-layers", type=int, default=defaults.max_float_layers, help="layers kept in float, at most"
    )


def mixed_search(
    args: argparse.Namespace, check: Sequence[Path], shape: tuple[int, int], backend: str
) -> MixedSearch | None:
    """The search the flags of :func:`add_mixed_arguments` ask for (None without a target), judged on
    ``check`` in ``backend``; checked before any minutes are spent."""
    from deeplabv3_pipeline.data.cityscapes import TRAIN_IDS_SUFFIX, frame_files

    if args.target_agreement is None and args.target_miou_drop is None:
        if args.check_labels:
            raise UserError("--check-labels is for a mixed-precision target: give --target-miou-drop too")
        return None
    target = Target(args.target_agreement, args.target_miou_drop)
    target.check(TARGET_FLAGS, labelled=bool(args.check_labels))
    bounds = Bounds(args.max_evaluations, args.max_float_layers)
    bounds.check(BOUND_FLAGS)
    labels = frame_files(args.check_labels, TRAIN_IDS_SUFFIX, "label") if args.check_labels else None
    return MixedSearch(CheckFrames(check, shape, args.model, backend, labels), target, bounds)


# ------------------------------------------------------------------------------------------- the ranking


def layer_sensitivity(graph: Any, rows: Sequence[Mapping[str, Any]], layers: Sequence[str]) -> dict[str, float]:
    """The error each of ``layers`` (node names of the ONNX ``graph``) adds in the per-layer comparison of
    the fully quantized model with the fp32 one (``rows``, evaluation/layers.py): the relative Euclidean
    distance of the tensor it writes minus the largest of the tensors it reads. Its output is followed
    through a single activation (ONNX Runtime fuses Conv+Relu and keeps the Relu's tensor); a layer whose
    output no row shows scores 0."""
    error = {row["tensor"]: row["relative_euclidean"] for row in rows if row.get("relative_euclidean") is not None}
    nodes = {node.name: node for node in graph.node}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    scores = {}
    for name in layers:
        node = nodes[name]
        output = node.output[0]
        while output not in error and len(consumers.get(output, [])) == 1:
            follower = consumers[output][0]
            if follower.op_type not in PASS_THROUGH_OPS:
                break
            output = follower.output[0]
        if output not in error:
            scores[name] = 0.0
            continue
        read = [error[tensor] for tensor in node.input if tensor in error]
        scores[name] = error[output] - max(read, default=0.0)
    return scores


def rank_layers(scores: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """``order``'s layers, the largest score first; equal scores in ``order`` (the graph's)."""
    position = {name: index for index, name in enumerate(order)}
    return sorted(order, key=lambda name: (-scores.get(name, 0.0), position[name]))


# ------------------------------------------------------------------------------------- the check frames


class CheckFrames:
    """The frames a candidate model is judged on, not calibrated on: their images, the fp32 model's
    predictions on them (run by the backend the candidates run in), and their labels where given
    (``label_files``: frame id -> trainIds PNG, every check frame's), for the mIoU drop."""

    def __init__(
        self,
        files: Sequence[Any],
        shape: tuple[int, int],
        reference_model: Any,
        backend: str,
        label_files: Mapping[str, Any] | None = None,
    ) -> None:
        from deeplabv3_pipeline.data.cityscapes import frame_id
        from deeplabv3_pipeline.evaluation.evaluate import read_label
        from deeplabv3_pipeline.optimize.quantize import read_calibration_images

        if not files:
            raise UserError("a mixed-precision search needs check frames: give --check-images 1 or more")
        self.files, self.backend = list(files), backend
        self.images = read_calibration_images(self.files, shape)
        self.labels = None
        if label_files:
            missing = [path for path in self.files if frame_id(path.name) not in label_files]
            if missing:
                raise UserError(f"check frame {missing[0]} has no label among --check-labels: give its trainIds PNG")
            self.labels = [read_label(label_files[frame_id(path.name)]) for path in self.files]
            for path, label in zip(self.files, self.labels, strict=True):
                if label.shape != tuple(shape):
                    raise UserError(f"the label of check frame {path} is {label.shape}, not the images' {shape}")
        self.reference = self.predict(reference_model)

    def predict(self, model: Any, precision: str | None = None) -> list[Any]:
        """``model``'s class ids on every check frame, in this search's backend."""
        from deeplabv3_pipeline.backends import open_backend

        runner = open_backend(self.backend, model, precision=precision)
        return [runner.run(image) for image in self.images]

    def figures(self, predictions: Sequence[Any]) -> Figures:
        """A candidate's figures from its predictions on every check frame."""
        return self.figures_of(self.images, predictions)

    def figures_of(self, frames: Sequence[Any], predictions: Sequence[Any]) -> Figures:
        """The figures of predictions on some of the check frames (``frames``: the images themselves, as a
        tool that ranks on a subset hands them back), judged against those frames' references only: the
        mean pixel agreement, and the mIoU and its drop below the fp32 model's where there are labels."""
        import numpy as np

        agreement = float(np.mean(self.agreements(frames, predictions)))
        if self.labels is None:
            return Figures(pixel_agreement=agreement)
        chosen = self.positions(frames)
        labels = [self.labels[index] for index in chosen]
        miou = labelled_miou(predictions, labels)
        reference = labelled_miou([self.reference[index] for index in chosen], labels)
        drop = None if miou is None or reference is None else reference - miou
        return Figures(pixel_agreement=agreement, miou_drop=drop, miou=miou)

    def positions(self, frames: Sequence[Any]) -> list[int]:
        """Where each of ``frames`` (the images themselves) is among the check frames."""
        index = {id(image): position for position, image in enumerate(self.images)}
        return [index[id(frame)] for frame in frames]

    def agreements(self, frames: Sequence[Any], predictions: Sequence[Any]) -> list[float]:
        """The pixel agreement of each prediction with its frame's reference."""
        from deeplabv3_pipeline.evaluation.metrics import pixel_agreement

        return [
            pixel_agreement(prediction, self.reference[position])
            for position, prediction in zip(self.positions(frames), predictions, strict=True)
        ]

    def judge(self, model: Any, precision: str | None = None) -> Figures:
        """``model``'s figures, run in this search's backend."""
        return self.figures(self.predict(model, precision))


def labelled_miou(predictions: Sequence[Any], labels: Sequence[Any]) -> float | None:
    """mIoU in points of class-id predictions against their trainIds labels, mmseg's (the confusion summed
    over the frames before dividing), unrounded."""
    from deeplabv3_pipeline.data.cityscapes import IGNORE_INDEX, NUM_CLASSES
    from deeplabv3_pipeline.evaluation.metrics import confusion_matrix, mean_iou

    return mean_iou(
        sum(
            confusion_matrix(prediction[0, 0], label, NUM_CLASSES, IGNORE_INDEX)
            for prediction, label in zip(predictions, labels, strict=True)
        )
    )
