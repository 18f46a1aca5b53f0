"""Latency statistics and the ais_bench-style inference summary."""

from __future__ import annotations

import numpy as np

from deeplabv3_pipeline.errors import UserError


def latency_stats(milliseconds: list[float]) -> dict[str, float]:
    """min/max/mean/median/p99 in ms, under ais_bench's key names."""
    values = np.asarray(milliseconds, dtype=np.float64)
    if values.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0}
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "percentile(99%)": float(np.percentile(values, 99)),
    }


def inference_summary(
    backend: str,
    compute_ms: dict[str, float],
    wall_seconds: float,
    files: dict[str, str],
    args: dict,
    batch_size: int = 1,
    compute_stats: dict | None = None,
) -> dict:
    """The summary every backend writes: ais_bench's fields plus end-to-end figures.

    ``compute_ms`` maps each input file name to its model compute time (ms, no I/O); a runner that
    reports aggregates only (ais_bench) gives ``compute_stats`` instead.
    ``throughput`` is ais_bench's: 1000 * batch / mean compute ms, compute only.
    """
    stats = latency_stats(list(compute_ms.values())) if compute_stats is None else compute_stats
    count = len(files)
    return {
        "backend": backend,
        "filesinfo": {str(i): {"infiles": [name], "outfiles": [files[name]]} for i, name in enumerate(sorted(files))},
        "args": args,
        "batch_size": batch_size,
        "num_images": count,
        "compute_time": stats,
        "NPU_compute_time": stats,
        "throughput": 1000.0 * batch_size / stats["mean"] if stats.get("mean") else 0.0,
        "per_image_compute_ms": dict(sorted(compute_ms.items())),
        "end_to_end": {"wall_s": wall_seconds, "images_per_s": count / wall_seconds if wall_seconds else 0.0},
    }


def merge_summaries(summaries: list[dict]) -> dict:
    """One summary from the shards' summaries: stats over all images; wall time summed (serial cost).

    Where a shard has no per-image times (ais_bench reports aggregates only), the merged stats
    are combined from the aggregates: mean weighted by image count, min/max exact, median and
    p99 not derivable (None).
    """
    if not summaries:
        raise ValueError("no summaries to merge")
    compute_ms: dict[str, float] = {}
    files: dict[str, str] = {}
    for summary in summaries:
        compute_ms.update(summary["per_image_compute_ms"])
        for info in summary["filesinfo"].values():
            files[info["infiles"][0]] = info["outfiles"][0]
    first = summaries[0]
    wall = sum(s["end_to_end"]["wall_s"] for s in summaries)
    merged = inference_summary(first["backend"], compute_ms, wall, files, first["args"], first["batch_size"])
    if len(compute_ms) < len(files):
        counts = [s["num_images"] for s in summaries]
        mean = sum(s["compute_time"]["mean"] * n for s, n in zip(summaries, counts, strict=True)) / sum(counts)
        stats = {
            "min": min(s["compute_time"]["min"] for s in summaries),
            "max": max(s["compute_time"]["max"] for s in summaries),
            "mean": mean,
            "median": None,
            "percentile(99%)": None,
        }
        merged.update(
            compute_time=stats,
            NPU_compute_time=stats,
            throughput=1000.0 * first["batch_size"] / mean if mean else 0.0,
            num_images=len(files),
        )
        merged["end_to_end"]["images_per_s"] = len(files) / wall if wall else 0.0
    # What a backend adds beside the common fields (TensorRT's GPU memory and copy times, ais_bench's
    # latencies): kept as the shard wrote it, or per shard where there are several.
    extras = [key for key in first if key not in merged and key not in ("inference_precision", "precision_evidence")]
    if len(summaries) == 1:
        merged.update({key: first[key] for key in extras})
    elif extras:
        merged["per_shard"] = [{key: summary.get(key) for key in extras} for summary in summaries]
    merged["shards"] = len(summaries)
    precisions = {summary.get("inference_precision") for summary in summaries}
    if len(precisions) > 1:
        raise UserError(
            f"the shards ran different precisions ({', '.join(sorted(map(str, precisions)))}): rerun inference"
        )
    for key in ("inference_precision", "precision_evidence"):
        merged[key] = first.get(key)
    return merged
