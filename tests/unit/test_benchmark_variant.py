"""The benchmark's per-job pieces: scripts/benchmark_variant.py, scripts/benchmark_machine.py and the machine
facts of deeplabv3_pipeline.cpu. Every variant runs on the fixture models (64x128); no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deeplabv3_pipeline import cpu
from deeplabv3_pipeline.backends import open_backend
from deeplabv3_pipeline.benchmark import variant_timing as benchmark_variant
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import read_bin
from deeplabv3_pipeline.model.opcount import count_operations

from ..conftest import MODEL_CONFIG, SHAPE, run_script
from .test_opcount import tiny_model

VARIANT_KEYS = {
    "variant",
    "backend",
    "precision",
    "winograd",
    "model",
    "inference_precision",
    "precision_evidence",
    "images",
    "input_shape",
    "threads",
    "warmup",
    "repeats",
    "load_s",
    "times_s",
    "median_s",
    "images_per_s",
    "peak_rss_mb",
    "operations_per_image",
    "executed_operations_per_image",
    "predictions",
    "cell_consistency",
}
MACHINE_KEYS = {
    "cpu",
    "flags",
    "usable_cores",
    "threads",
    "clock_mhz",
    "peak_cores",
    "theoretical_peak_gops",
    "theoretical_peak_notes",
    "gemm_gflops",
    "versions",
}
AVX2_FLAGS = frozenset(["sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c"])
AVX512_FLAGS = AVX2_FLAGS | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
AMX_FLAGS = AVX512_FLAGS | {"amx_tile", "amx_bf16", "amx_int8"}


@pytest.fixture(scope="module")
def bins(prep_dir) -> list[Path]:
    return sorted(prep_dir.glob("*.bin"))[:2]


@pytest.fixture(scope="module")
def reference_ids(onnx_models, bins) -> np.ndarray:
    """ONNX Runtime run directly on the bins: what infer.py writes for them, as (N,H,W)."""
    backend = open_backend("onnxruntime", onnx_models[1], threads=1)
    return np.stack([backend.run(read_bin(path, np.float32, (1, 3, *SHAPE)))[0, 0] for path in bins])


def run_variant(folder: Path, variant: str, backend: str, precision: str, model: Path, bins, count_model, *extra):
    """benchmark_variant.py as the workflow's rule calls it; returns the process, its JSON and predictions."""
    output, predictions = folder / f"{variant}.json", folder / f"{variant}.npy"
    completed = run_script(
        "benchmark_variant.py",
        "--variant",
        variant,
        "--backend",
        backend,
        "--precision",
        precision,
        "--model",
        model,
        "--bins",
        *bins,
        "--count-model",
        count_model,
        "--repeats",
        2,
        "--warmup",
        1,
        "--threads",
        1,
        *extra,
        "--output",
        output,
        "--predictions",
        predictions,
        check=False,
    )
    if completed.returncode != 0:
        return completed, None, None
    return completed, json.loads(output.read_text()), np.load(predictions)


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean(first == second))


def check_result(result: dict, predictions: np.ndarray, bins: list[Path], precision: str) -> None:
    """Every key, consistent figures, and the predictions as the gathering step reads them."""
    assert set(result) == VARIANT_KEYS
    assert result["inference_precision"] == precision, result["precision_evidence"]
    assert result["images"] == [str(path) for path in bins] and result["input_shape"] == list(SHAPE)
    assert result["threads"] == 1 and result["warmup"] == 1 and result["repeats"] == 2
    assert len(result["times_s"]) == 2 * len(bins) and all(seconds > 0 for seconds in result["times_s"])
    assert result["median_s"] == pytest.approx(float(np.median(result["times_s"])))
    assert result["images_per_s"] == pytest.approx(1 / result["median_s"])
    assert result["load_s"] > 0 and result["peak_rss_mb"] > 50 and result["operations_per_image"] > 0
    assert predictions.dtype == np.uint8 and predictions.shape == (len(bins), *SHAPE)
    assert result["predictions"].endswith(f"{result['variant']}.npy")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fp32_variant_writes_every_key_and_infer_predictions(tmp_path, backend, onnx_models, bins, reference_ids):
    _, result, predictions = run_variant(
        tmp_path, f"{backend}-fp32", backend, "fp32", onnx_models[1], bins, onnx_models[1]
    )
    assert result is not None
    check_result(result, predictions, bins, "fp32")
    assert result["backend"] == backend and result["precision"] == "fp32" and not result["winograd"]
    assert result["executed_operations_per_image"] == result["operations_per_image"]  # the reference graph itself
    if backend == "onnxruntime":
        np.testing.assert_array_equal(predictions, reference_ids)
    else:  # another runtime's fp32 kernels: the same model, summed in another order
        assert agreement(predictions, reference_ids) > 0.999


def test_pytorch_fp32_variant_runs_the_checkpoint(tmp_path, checkpoint, onnx_models, bins, reference_ids):
    shape = ("--model-config", MODEL_CONFIG, "--input-shape", *SHAPE)
    _, result, predictions = run_variant(
        tmp_path, "pytorch-fp32", "pytorch", "fp32", checkpoint, bins, onnx_models[1], *shape
    )
    assert result is not None
    check_result(result, predictions, bins, "fp32")
    assert result["executed_operations_per_image"] == result["operations_per_image"]  # no graph of its own
    assert agreement(predictions, reference_ids) > 0.999


def test_int8_variant_reports_int8(tmp_path, int8_model, onnx_models, bins):
    _, result, predictions = run_variant(
        tmp_path, "onnxruntime-int8", "onnxruntime", "int8", int8_model[0], bins, onnx_models[1]
    )
    assert result is not None
    check_result(result, predictions, bins, "int8")
    assert "QuantizeLinear" in result["precision_evidence"] and result["executed_operations_per_image"] > 0


def test_int8_of_the_fp32_model_is_one_clear_error(tmp_path, onnx_models, bins):
    completed, result, _ = run_variant(
        tmp_path, "onnxruntime-int8", "onnxruntime", "int8", onnx_models[1], bins, onnx_models[1]
    )
    assert completed.returncode == 2 and result is None and "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: asked for precision int8, but onnxruntime runs")
    assert not (tmp_path / "onnxruntime-int8.json").exists() and not (tmp_path / "onnxruntime-int8.npy").exists()


def cell_predictions(folder: Path, bins: list[Path], class_ids: np.ndarray) -> list[Path]:
    """``class_ids`` (N,H,W) written as a cell's prediction files of ``bins`` (``{stem}_0.bin``, int64)."""
    folder.mkdir()
    paths = [folder / f"{path.stem}_0.bin" for path in bins]
    for path, ids in zip(paths, class_ids, strict=True):
        ids.astype(np.int64).reshape(1, 1, *SHAPE).tofile(path)
    return paths


def test_timed_outputs_equal_to_the_cells_predictions_pass_and_a_changed_pixel_is_caught(
    tmp_path, onnx_models, bins, reference_ids
):
    """MLPerf's TEST01: the cell of this variant (infer.py's predictions, here ONNX Runtime on the bins) and
    the timed pass agree pixel for pixel; one pixel of one frame changed in the cell's files stops the job,
    naming the frame, and writes nothing."""
    cell = cell_predictions(tmp_path / "cell", bins, reference_ids)
    args = ("onnxruntime", "fp32", onnx_models[1], bins, onnx_models[1], "--cell-predictions", *cell)
    _, result, _ = run_variant(tmp_path, "onnxruntime-fp32", *args)
    assert result["cell_consistency"] == {
        "frames": 2,
        "pixels": 2 * SHAPE[0] * SHAPE[1],
        "differing_pixels": 0,
        "differing_frames": [],
        "equal": True,
    }
    changed = reference_ids.copy()
    changed[1, 3, 5] = (changed[1, 3, 5] + 1) % 19
    planted = cell_predictions(tmp_path / "planted", bins, changed)
    (tmp_path / "onnxruntime-fp32.json").unlink()
    completed, result, _ = run_variant(tmp_path, "onnxruntime-fp32", *args[:5], "--cell-predictions", *planted)
    assert completed.returncode == 2 and result is None
    assert f"differ from the cell's own predictions on 1 of {2 * SHAPE[0] * SHAPE[1]} pixels ({planted[1]})" in (
        completed.stderr
    )
    assert not (tmp_path / "onnxruntime-fp32.json").exists()
    misnamed = run_variant(tmp_path, "onnxruntime-fp32", *args[:5], "--cell-predictions", *planted[::-1])[0]
    assert misnamed.returncode == 2 and "in --bins order" in misnamed.stderr


def test_class_ids_outside_cityscapes_are_refused():
    predictions = [np.full((1, 1, 2, 3), 19, np.int64)]
    with pytest.raises(UserError, match=r"class ids 19\.\.19, not 0\.\.18"):
        benchmark_variant.class_id_stack(predictions, (2, 3), "test")
    with pytest.raises(UserError, match="shape"):
        benchmark_variant.class_id_stack([np.zeros((1, 2, 3), np.int64)], (2, 3), "test")


def test_executed_operations_are_the_variants_own_graph_only_for_onnx(tmp_path, onnx_models):
    count = benchmark_variant.executed_operations
    assert count(Path("model.xml"), onnx_models[1], 123) == 123  # an OpenVINO IR: not counted
    assert count(Path("random.pth"), onnx_models[1], 123) == 123
    assert count(onnx_models[1], onnx_models[1], 123) == 123  # the reference itself: not counted twice
    tiny = tiny_model(tmp_path / "tiny.onnx")
    assert count(tiny, onnx_models[1], 123) == count_operations(tiny)["total"]  # another ONNX: its own graph
    assert benchmark_variant.is_winograd(Path("results/models/deeplabv3_sim_bs1_winograd.onnx"))
    assert not benchmark_variant.is_winograd(Path("results/models/deeplabv3_sim_bs1.onnx"))


# ---------------------------------------------------------------- the machine


def test_machine_cli_writes_its_keys(tmp_path):
    output = tmp_path / "machine.json"
    run_script("benchmark_machine.py", "--threads", 1, "--gemm-size", 256, "--output", output)
    machine = json.loads(output.read_text())
    assert set(machine) == MACHINE_KEYS
    assert machine["threads"] == 1 and machine["peak_cores"] == 1 and machine["usable_cores"] >= 1
    assert set(machine["flags"]) <= set(cpu.SPEED_FLAGS)
    gemm = machine["gemm_gflops"]
    assert gemm["best"] > 0 and gemm["torch"] > 0 and gemm["size"] == 256
    assert set(machine["theoretical_peak_gops"]) == {"fp32", "bf16", "int8"}
    assert set(machine["versions"]) == {"numpy", "torch", "onnxruntime", "openvino"} and machine["versions"]["torch"]


def test_theoretical_peaks_of_an_avx2_cpu_without_vnni_or_bf16():
    # 2 FMA units x 8 lanes x 2 = 32 FLOP per cycle and core; 4 cores at 3 GHz
    assert cpu.theoretical_peaks(AVX2_FLAGS, 4, 3000.0) == {"fp32": 384.0, "bf16": None, "int8": 768.0}
    assert cpu.theoretical_peaks(AVX2_FLAGS | {"avx_vnni"}, 4, 3000.0)["int8"] == 1536.0  # Alder Lake's VNNI


def test_theoretical_peaks_of_an_avx512_cpu_with_vnni_and_bf16():
    # 2 FMA units x 16 lanes x 2 = 64 FLOP per cycle and core; 2 cores at 2 GHz
    assert cpu.theoretical_peaks(AVX512_FLAGS, 2, 2000.0) == {"fp32": 256.0, "bf16": 512.0, "int8": 1024.0}
    assert cpu.theoretical_peaks(AMX_FLAGS, 2, 2000.0) == cpu.theoretical_peaks(AVX512_FLAGS, 2, 2000.0)
    assert any("lower bound" in note and note.startswith("bf16") for note in cpu.peak_notes(AMX_FLAGS))
    assert not any("lower bound" in note for note in cpu.peak_notes(AVX512_FLAGS))


def test_theoretical_peaks_without_a_clock_or_simd():
    assert cpu.theoretical_peaks(AVX512_FLAGS, 2, None) == {"fp32": None, "bf16": None, "int8": None}
    assert cpu.theoretical_peaks({"sse2"}, 1, 1000.0) == {"fp32": 16.0, "bf16": None, "int8": None}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clock_is_the_highest_of_cpufreq_and_cpuinfo(tmp_path):
    sys_cpu = tmp_path / "sys"
    write(sys_cpu / "cpu0" / "cpufreq" / "cpuinfo_max_freq", "3500000\n")  # kHz
    write(sys_cpu / "cpu1" / "cpufreq" / "cpuinfo_max_freq", "garbled\n")
    cpuinfo = write(
        tmp_path / "cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2100.500\nprocessor\t: 1\ncpu MHz\t\t: 3900.0\n"
    )
    assert cpu.clock_mhz(sys_cpu, tmp_path / "missing") == 3500.0
    assert cpu.clock_mhz(tmp_path / "missing", cpuinfo) == 3900.0  # a VM without cpufreq: the current clock
    assert cpu.clock_mhz(sys_cpu, cpuinfo) == 3900.0
    assert cpu.clock_mhz(tmp_path / "missing", tmp_path / "missing") is None
    assert cpu.max_clock_mhz([], "model name\t: x\n") is None


def test_usable_cores_and_a_small_gemm():
    assert cpu.usable_cores() >= 1
    rate = cpu.gemm_rate(1, size=256, repeats=1)
    assert rate["torch"] > 0 and rate["best"] >= rate["torch"] and rate["threads"] == 1 and rate["size"] == 256
    assert rate["numpy"] is None or rate["numpy"] > 0
