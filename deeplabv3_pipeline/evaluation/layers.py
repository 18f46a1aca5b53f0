"""Where two runs of one network part: a per-layer comparison of every tensor both compute.

The metrics and thresholds are those of Ascend's msit/ait ``debug compare`` (one row per tensor: cosine
similarity, max and mean absolute error, relative Euclidean distance, KL divergence, RMSE; a tensor is
past the thresholds when its cosine similarity is below 0.99, its relative Euclidean distance above
0.05, its KL divergence above 0.005 or its RMSE above 1.0). Rows follow the reference graph's order;
the first row past a threshold is where the outputs part, and :func:`error_origin` says whether the
error starts there (the tensors it reads still agree) or accumulates (they already drift).

The tensors come from each backend's dump (``open_tensors`` of backends/<name>/: ONNX Runtime on copies
of the model with a few GB of the compared tensors as outputs each, OpenVINO on parts of it with a few GB of them each,
PyTorch through forward hooks), named as the ONNX graph names them, so the models a cell ran are never
changed. One side's tensors of an image are kept (:func:`held_side`: :class:`HeldTensors` in memory,
:class:`SpilledTensors` on disk) while the other's stream into a :class:`StreamedComparison`; the rest
are pure functions.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from deeplabv3_pipeline.errors import UserError

if TYPE_CHECKING:
    from deeplabv3_pipeline.backends.base import TensorDump

# metric -> (direction, ait's default threshold): "below" fails under it, "above" over it
THRESHOLDS: dict[str, tuple[str, float]] = {
    "cosine_similarity": ("below", 0.99),
    "relative_euclidean": ("above", 0.05),
    "kl_divergence": ("above", 0.005),
    "rmse": ("above", 1.0),
}
# a tensor that reads inputs this close to the reference's took no error from them (error_origin)
CLEAN_INPUT_COSINE = 0.9999
CHUNK = 1 << 18  # elements of a tensor compared at a time (2 MB buffers in float64: in cache)
METRICS = ("cosine_similarity", "max_abs_error", "mean_abs_error", "relative_euclidean", "kl_divergence", "rmse")


def tensor_metrics(reference: np.ndarray, other: np.ndarray, class_axis: int | None = None) -> dict[str, float | None]:
    """ait's metrics of ``other`` against ``reference`` (same shape). ``class_axis``: where the tensor is
    logits, the axis of the classes: KL divergence of the softmaxed distributions, averaged over pixels
    (None elsewhere, as ait computes it only where it applies). CHUNK elements at a time are widened to
    float64 in two small buffers, where the difference is exact (two float32s differ by a float64) and
    BLAS sums the products: no float64 copy of a 268 MB activation, whose page faults cost more than
    the arithmetic."""
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {other.shape}")
    ref, oth = reference.reshape(-1), other.reshape(-1)
    if ref.dtype != oth.dtype or ref.dtype.kind != "f":
        ref, oth = ref.astype(np.float32), oth.astype(np.float32)
    size = ref.size
    with threadpool_limits(1, user_api="blas"):
        sums, max_abs = _chunk_sums(ref, oth)
    ref_norm, oth_norm, diff_norm = (math.sqrt(sums[key]) for key in ("ref", "oth", "diff"))
    if ref_norm == 0 and oth_norm == 0:
        cosine = 1.0
    elif ref_norm == 0 or oth_norm == 0:
        cosine = 0.0
    else:
        cosine = sums["dot"] / (ref_norm * oth_norm)
    relative = diff_norm / ref_norm if ref_norm else (0.0 if diff_norm == 0 else math.inf)
    return {
        "cosine_similarity": cosine,
        "max_abs_error": max_abs,
        "mean_abs_error": sums["abs"] / size if size else 0.0,
        "relative_euclidean": relative,
        "kl_divergence": None if class_axis is None else softmax_kl(reference, other, class_axis),
        "rmse": diff_norm / math.sqrt(size) if size else 0.0,
    }


def _chunk_sums(ref: np.ndarray, oth: np.ndarray) -> tuple[dict[str, float], float]:
    """:func:`tensor_metrics`' sums and its largest absolute difference, CHUNK elements at a time through
    float64 buffers. (Called with BLAS on one thread: OpenBLAS's two threads made these short products
    2-7x slower, and took the core PyTorch computes on.)"""
    size = ref.size
    sums = dict.fromkeys(("ref", "oth", "diff", "dot", "abs"), 0.0)
    max_abs = 0.0
    ref_wide, oth_wide, ones = np.empty(min(size, CHUNK)), np.empty(min(size, CHUNK)), np.ones(min(size, CHUNK))
    for start in range(0, size, CHUNK):
        count = min(CHUNK, size - start)
        ref_part, oth_part = ref_wide[:count], oth_wide[:count]
        np.copyto(ref_part, ref[start : start + count])
        np.copyto(oth_part, oth[start : start + count])
        sums["ref"] += float(np.dot(ref_part, ref_part))
        sums["oth"] += float(np.dot(oth_part, oth_part))
        sums["dot"] += float(np.dot(ref_part, oth_part))
        difference = np.subtract(oth_part, ref_part, out=oth_part)
        sums["diff"] += float(np.dot(difference, difference))
        absolute = np.abs(difference, out=difference)
        sums["abs"] += float(np.dot(absolute, ones[:count]))
        part_max = float(absolute.max())
        if not math.isnan(max_abs):  # a NaN (an overflow) stays
            max_abs = part_max if math.isnan(part_max) else max(max_abs, part_max)
    return sums, max_abs


def softmax_kl(reference: np.ndarray, other: np.ndarray, axis: int) -> float:
    """Mean over pixels of KL(softmax(reference) || softmax(other)) along ``axis``."""

    def log_softmax(values: np.ndarray) -> np.ndarray:
        shifted = values.astype(np.float64) - values.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    log_p, log_q = log_softmax(reference), log_softmax(other)
    return float((np.exp(log_p) * (log_p - log_q)).sum(axis=axis).mean())


def parse_thresholds(items: Sequence[str]) -> dict[str, tuple[str, float]]:
    """ait's thresholds with ``metric=limit`` items over them (``--threshold``, config debug.thresholds);
    a :class:`UserError` names the metrics that have one."""
    thresholds = dict(THRESHOLDS)
    for item in items:
        name, _, limit = item.partition("=")
        if name not in THRESHOLDS:
            raise UserError(f"threshold {item!r}: no metric {name!r} has one: choose from {', '.join(THRESHOLDS)}")
        try:
            thresholds[name] = (THRESHOLDS[name][0], float(limit))
        except ValueError:
            raise UserError(
                f"threshold {item!r}: the limit is not a number (e.g. {name}={THRESHOLDS[name][1]:g})"
            ) from None
    return thresholds


def past_thresholds(metrics: Mapping[str, float | None], thresholds: Mapping[str, tuple[str, float]]) -> list[str]:
    """The metrics of a row past their thresholds (``cosine_similarity 0.9512 < 0.99``)."""
    past = []
    for name, (direction, limit) in thresholds.items():
        value = metrics.get(name)
        if value is None:
            continue
        if not math.isfinite(value) and not (direction == "below" and value == math.inf):
            past.append(f"{name} {value}")  # NaN, or an infinity on the failing side: an overflow (fp16)
        elif (direction == "below" and value < limit) or (direction == "above" and value > limit):
            past.append(f"{name} {value:.4g} {'<' if direction == 'below' else '>'} {limit:g}")
    return past


@dataclass(frozen=True)
class Tensor:
    """A tensor of the reference graph, in its order: its name, the node that makes it, what it reads."""

    name: str
    op_type: str
    inputs: tuple[str, ...]


def compare_pair(
    tensor: Tensor,
    ours: np.ndarray,
    theirs: np.ndarray,
    logits: str | None,
    thresholds: Mapping[str, tuple[str, float]],
) -> dict:
    """The row of one tensor both dumps hold (its ``index`` is set by the table): its metrics and which
    thresholds it is past. ``logits``: the tensor whose KL divergence is computed (class axis 1)."""
    row = {
        "tensor": tensor.name,
        "op_type": tensor.op_type,
        "reference_shape": list(ours.shape),
        "reference_dtype": str(ours.dtype),
        "other_shape": list(theirs.shape),
        "other_dtype": str(theirs.dtype),
    }
    if ours.shape != theirs.shape:
        return row | dict.fromkeys(METRICS) | {"past": ["shapes differ"]}
    metrics = tensor_metrics(ours, theirs, class_axis=1 if tensor.name == logits else None)
    past = past_thresholds(metrics, thresholds)
    # (JSON has no NaN or infinity: such a metric is null, and "past" names its value)
    finite = {
        name: None if value is not None and not math.isfinite(value) else value for name, value in metrics.items()
    }
    return row | finite | {"past": past}


class StreamedComparison:
    """The sink of one side's dump: each tensor it hands on is compared at once with the other side's,
    ``held`` (e.g. :class:`SpilledTensors`, :class:`HeldTensors`), and let go, so the streamed side's
    tensors are never all kept. ``held_is_reference``: which side ``held`` is (the streamed one is the
    other). A name handed on twice is compared again (the later value is the tensor's). :meth:`rows`
    gives the table in the order of ``order``."""

    def __init__(
        self,
        order: Sequence[Tensor],
        held: Mapping[str, np.ndarray],
        logits: str | None = None,
        thresholds: Mapping[str, tuple[str, float]] = THRESHOLDS,
        held_is_reference: bool = True,
    ) -> None:
        self.order, self.held, self.logits, self.thresholds = order, held, logits, thresholds
        self.held_is_reference = held_is_reference
        self.tensors = {tensor.name: tensor for tensor in order}
        self.compared: dict[str, dict] = {}

    def put(self, name: str, value: np.ndarray) -> None:
        if name in self.tensors and name in self.held:
            held = np.asarray(self.held[name])
            reference, other = (held, value) if self.held_is_reference else (value, held)
            self.compared[name] = compare_pair(self.tensors[name], reference, other, self.logits, self.thresholds)

    def rows(self) -> list[dict]:
        rows = [
            {"index": index, **self.compared[name]}
            for index, name in enumerate(tensor.name for tensor in self.order if tensor.name in self.compared)
        ]
        if not rows:
            raise UserError(
                "the two models share no tensor name: compare models exported from one network "
                "(an ONNX model and its int8, fp16 or Winograd copy)"
            )
        return rows


def compare_tensors(
    order: Sequence[Tensor],
    reference: Mapping[str, np.ndarray],
    other: Mapping[str, np.ndarray],
    logits: str | None = None,
    thresholds: Mapping[str, tuple[str, float]] = THRESHOLDS,
) -> list[dict]:
    """One row per tensor of ``order`` that both hold (:class:`StreamedComparison` over ``other``)."""
    comparison = StreamedComparison(order, reference, logits, thresholds)
    for name, value in other.items():
        comparison.put(name, value)
    return comparison.rows()


def worst_rows(per_image: Sequence[Sequence[Mapping]]) -> list[dict]:
    """The rows of several images as one: per tensor the worst of each metric (the lowest cosine
    similarity, the highest of the others) and every threshold any image is past."""
    if not per_image:
        raise ValueError("no image compared")
    worst = [dict(row) for row in per_image[0]]
    for rows in per_image[1:]:
        for combined, row in zip(worst, rows, strict=True):
            for name in METRICS:
                values = [value for value in (combined[name], row[name]) if value is not None]
                if values:
                    combined[name] = min(values) if name == "cosine_similarity" else max(values)
            combined["past"] = list(dict.fromkeys([*combined["past"], *row["past"]]))
    return worst


def first_past(rows: Sequence[Mapping]) -> Mapping | None:
    return next((row for row in rows if row["past"]), None)


def error_origin(rows: Sequence[Mapping], order: Sequence[Tensor]) -> str | None:
    """For the first row past a threshold: ``starts here`` where every compared tensor it reads still
    agrees with the reference (cosine similarity >= CLEAN_INPUT_COSINE, or it reads only the graph's
    input), ``accumulates`` where one already drifted without crossing a threshold. None: no row past."""
    first = first_past(rows)
    if first is None:
        return None
    by_name = {row["tensor"]: row for row in rows}
    reads = next(tensor.inputs for tensor in order if tensor.name == first["tensor"])
    cosines = [
        by_name[name]["cosine_similarity"]
        for name in reads
        if by_name.get(name, {}).get("cosine_similarity") is not None
    ]
    return "starts here" if all(value >= CLEAN_INPUT_COSINE for value in cosines) else "accumulates"


@dataclass
class Comparison:
    """Two dumps compared on some images: the rows (the worst of each metric over the images), which side
    was kept and where (:func:`held_side`), and the seconds each side's pass took."""

    rows: list[dict]
    held: dict[str, str]
    seconds: dict[str, float]


def compare_dumps(
    reference: TensorDump,
    model: TensorDump,
    graph_path: Path,
    images: Iterable[np.ndarray],
    scratch: Path,
    thresholds: Mapping[str, tuple[str, float]] = THRESHOLDS,
) -> Comparison:
    """Every tensor of the ONNX graph ``graph_path`` that both dumps compute, compared on each image: one
    side's tensors of an image kept (:func:`held_side`: in memory, or spilled under ``scratch``), the
    other's compared with them as its dump hands them on, one image at a time."""
    graph = read_graph(graph_path)
    order, logits = graph_order(graph), logits_tensor(graph)
    kept, where = held_side(reference.streams, model.streams)
    held_dump, streamed_dump = (model, reference) if kept == "model" else (reference, model)
    per_image, seconds = [], {"held": 0.0, "streamed_and_compared": 0.0}
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".layers-") as folder:
        for number, image in enumerate(images):
            held: SpilledTensors | HeldTensors
            if where == "disk":
                held = SpilledTensors(Path(folder) / str(number))
            else:
                held = HeldTensors(copy=not held_dump.owned)
            start = time.perf_counter()
            held_dump.dump(image, held.put)
            seconds["held"] += time.perf_counter() - start
            start = time.perf_counter()
            comparison = StreamedComparison(order, held, logits, thresholds, held_is_reference=kept == "reference")
            streamed_dump.dump(image, comparison.put)
            seconds["streamed_and_compared"] += time.perf_counter() - start
            per_image.append(comparison.rows())
            held.clear()
    return Comparison(worst_rows(per_image), {"side": kept, "in": where}, seconds)


# ------------------------------------------------------------------------------------------------ the dump


def output_groups(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices of ``sizes`` in groups whose sizes add up to at most ``budget`` (a size over it
    alone), in order."""
    groups: list[list[int]] = []
    total = 0
    for index, size in enumerate(sizes):
        if not groups or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += size
    return groups


class SpilledTensors(Mapping[str, np.ndarray]):
    """One model's tensors of one image, written to ``.npy`` files in ``folder`` as its dump hands them on
    (``put``, a dump's sink; a name put twice keeps the later value) and read back one at a time: at
    1024x2048 R50-D8's tensors are 11.6 GB per model, and the compared model's come on top."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, Path] = {}

    def put(self, name: str, value: np.ndarray) -> None:
        path = self.files.setdefault(name, self.folder / f"{len(self.files)}.npy")
        np.save(path, np.ascontiguousarray(value))

    def __getitem__(self, name: str) -> np.ndarray:
        return np.load(self.files[name])  # read whole, one at a time (a memory map's pages stay in RSS)

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def clear(self) -> None:
        for path in self.files.values():
            path.unlink()
        self.files.clear()


def held_side(reference_streams: bool, model_streams: bool) -> tuple[str, str]:
    """(the side whose tensors of an image are kept, where: ``memory`` or ``disk``) while the other side's
    dump streams into the comparison. A side that computes all its tensors before it hands any on is
    kept where the other streams (its runtime held them all at once anyway; the streamed side adds one
    tensor at a time); where neither streams, both would be in memory at once (11.6 GB each for R50-D8 at
    1024x2048), so the reference's go to disk first; where both stream, too."""
    if reference_streams and not model_streams:
        return "model", "memory"
    if model_streams and not reference_streams:
        return "reference", "memory"
    return "reference", "disk"


class HeldTensors(dict):
    """One side's tensors of one image, kept in memory as its dump hands them on (``put``, a dump's sink; a
    name put twice keeps the later value). ``copy``: whether a value is copied, as the runtime may write
    over it after (a dump whose ``owned`` is false: PyTorch's hooked outputs); ONNX Runtime and OpenVINO
    hand on new arrays (``owned``), kept as they are."""

    def __init__(self, copy: bool = True) -> None:
        super().__init__()
        self.copy_values = copy

    def put(self, name: str, value: np.ndarray) -> None:
        self[name] = value.copy() if self.copy_values else value


def graph_order(graph) -> list[Tensor]:
    """Every node output of an ONNX graph, in the graph's (topological) order."""
    return [
        Tensor(output, node.op_type, tuple(name for name in node.input if name))
        for node in graph.node
        for output in node.output
        if output
    ]


def read_graph(graph_path: Path):
    """The graph of an ONNX file whose tensor names and order a comparison follows, read once per version of
    the file (both dumps and the table read it)."""
    status = Path(graph_path).stat()
    return _read_graph(str(graph_path), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=4)
def _read_graph(path: str, mtime_ns: int, size: int):
    import onnx

    return onnx.load(path, load_external_data=False).graph


def tensor_names(graph_path: Path) -> set[str]:
    """The names of every tensor the nodes of an ONNX file compute (a dump reads only these)."""
    return {tensor.name for tensor in graph_order(read_graph(graph_path))}


def logits_tensor(graph) -> str | None:
    """The tensor the graph's last ArgMax reads over axis 1: its class scores (None where it has none)."""
    argmaxes = [
        node
        for node in graph.node
        if node.op_type == "ArgMax" and {a.name: a.i for a in node.attribute}.get("axis", 0) == 1
    ]
    return argmaxes[-1].input[0] if argmaxes else None
