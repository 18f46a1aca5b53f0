import builtins
import errno

import numpy as np
import pytest

from deeplabv3_pipeline.benchmark.timing import inference_summary, latency_stats, merge_summaries
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import read_bin, write_atomic


def test_bin_round_trip_is_raw_c_order(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    path = tmp_path / "x.bin"
    write_atomic(path, array)
    assert path.stat().st_size == 96
    assert path.read_bytes() == array.tobytes()
    np.testing.assert_array_equal(read_bin(path, np.float32, (1, 2, 3, 4)), array)
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_a_killed_writers_partial_file_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".x.bin.partial-99999"
    stale.write_bytes(b"half")
    write_atomic(tmp_path / "x.bin", np.zeros(2, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_wrong_size_bin_is_an_error(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match=r"short\.bin has 10 bytes, expected 16"):
        read_bin(path, np.float32, (1, 4))


def test_full_disk_leaves_no_partial_file_and_keeps_finished_ones(tmp_path, monkeypatch):
    finished = tmp_path / "done.bin"
    write_atomic(finished, np.ones(4, np.float32))
    real_open = builtins.open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda path, mode="r", *a, **k: FullDisk(real_open(path, mode, *a, **k)))
    with pytest.raises(UserError, match=r"no space left to write .*new\.bin"):
        write_atomic(tmp_path / "new.bin", np.ones(1000, np.float32))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.bin"]
    assert finished.stat().st_size == 16


def test_latency_stats_and_throughput():
    stats = latency_stats([10.0, 20.0, 30.0, 40.0])
    assert stats["min"] == 10 and stats["max"] == 40 and stats["mean"] == 25 and stats["median"] == 25
    assert stats["percentile(99%)"] == pytest.approx(39.7)
    summary = inference_summary(
        "x", {"a.bin": 200.0, "b.bin": 300.0}, 2.0, {"a.bin": "a_0.bin", "b.bin": "b_0.bin"}, {}
    )
    assert summary["throughput"] == pytest.approx(4.0)  # 1000 / 250 ms
    assert summary["end_to_end"]["images_per_s"] == pytest.approx(1.0)
    assert summary["filesinfo"]["1"] == {"infiles": ["b.bin"], "outfiles": ["b_0.bin"]}


def test_merging_shards_equals_one_run():
    times = {f"{i}.bin": float(i + 1) for i in range(5)}
    files = {name: name.replace(".bin", "_0.bin") for name in times}
    whole = inference_summary("x", times, 5.0, files, {})
    parts = [
        inference_summary("x", {k: times[k] for k in names}, 2.5, {k: files[k] for k in names}, {})
        for names in (["0.bin", "1.bin"], ["2.bin", "3.bin", "4.bin"])
    ]
    merged = merge_summaries(parts)
    assert merged["compute_time"] == whole["compute_time"]
    assert merged["num_images"] == 5 and merged["shards"] == 2
    assert merged["end_to_end"]["wall_s"] == 5.0


def test_a_backends_own_summary_fields_survive_the_gathering():
    """TensorRT's GPU figures (and ais_bench's latencies) are not common fields: one shard keeps them as
    written, several keep them per shard."""
    files = {"a.bin": "a_0.bin", "b.bin": "b_0.bin"}
    shards = []
    for name, memory in (("a.bin", 900.0), ("b.bin", 950.0)):
        summary = inference_summary("tensorrt", {name: 2.0}, 0.1, {name: files[name]}, {})
        summary.update(gpu={"name": "GPU", "memory_used_mb": memory}, h2d_ms={"mean": 0.5})
        shards.append(summary)
    one = merge_summaries(shards[:1])
    assert one["gpu"] == {"name": "GPU", "memory_used_mb": 900.0} and one["h2d_ms"] == {"mean": 0.5}
    both = merge_summaries(shards)
    assert "gpu" not in both and [shard["gpu"]["memory_used_mb"] for shard in both["per_shard"]] == [900.0, 950.0]
