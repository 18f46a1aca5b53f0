"""deeplabv3_pipeline/benchmark/speed.py and scripts/benchmark_report.py on hand-made variant timings (no timing
is run)."""

import json

import numpy as np
import pytest

from deeplabv3_pipeline.benchmark.speed import peaks, summarise, to_markdown

from ..conftest import run_script

OPS = 4.0e9  # operations per image of the reference graph


def variant(name, precision, median_s, executed=OPS, computed_in=None):
    backend = name.split("-")[0]
    return {
        "variant": name,
        "backend": backend,
        "precision": precision,
        "inference_precision": computed_in or precision,
        "precision_evidence": "test",
        "median_s": median_s,
        "operations_per_image": OPS,
        "executed_operations_per_image": executed,
        "peak_rss_mb": 100.0,
        "images": ["a.bin", "b.bin"],
        "input_shape": [4, 4],
    }


MACHINE = {
    "cpu": "test CPU",
    "threads": 2,
    "theoretical_peak_gops": {"fp32": 10.0, "int8": 40.0},
    "gemm_gflops": {"best": 8.0},
}
REFERENCE = np.zeros((2, 4, 4), np.uint8)


def predictions_with(disagreeing_pixels: int) -> np.ndarray:
    predictions = REFERENCE.copy()
    predictions.reshape(-1)[:disagreeing_pixels] = 1
    return predictions


def test_rows_speedups_agreement_and_the_fastest_within_the_gate():
    variants = [
        variant("pytorch-fp32", "fp32", 2.0),
        variant("onnxruntime-fp32", "fp32", 1.0),
        variant("onnxruntime-int8", "int8", 0.25),  # fastest, but below the gate
        variant("openvino-int8", "int8", 0.5),
    ]
    predictions = {
        "pytorch-fp32": REFERENCE,
        "onnxruntime-fp32": REFERENCE,
        "onnxruntime-int8": predictions_with(2),  # 2 of 32 pixels differ: 0.9375
        "openvino-int8": predictions_with(0),
    }
    summary = summarise(MACHINE, variants, predictions, "pytorch-fp32", frames=500, min_agreement=0.98)
    rows = {row["variant"]: row for row in summary["variants"]}
    assert rows["onnxruntime-fp32"]["speedup"] == 2.0 and rows["pytorch-fp32"]["speedup"] == 1.0
    assert rows["onnxruntime-int8"]["pixel_agreement"] == 1 - 2 / 32
    assert summary["fastest"] == "openvino-int8"
    assert rows["openvino-int8"]["projected_s"] == 250.0 and rows["openvino-int8"]["images_per_s"] == 2.0
    assert summary["images_timed"] == 2 and summary["input_shape"] == [4, 4]
    markdown = to_markdown(summary)
    assert "openvino-int8 (fastest)" in markdown and "| fp32 |" in markdown


def test_no_figure_is_above_the_peak_even_where_a_rate_beats_the_isa_figure():
    variants = [
        variant("pytorch-fp32", "fp32", 2.0),  # 2 GOP/s
        variant("onnxruntime-fp32", "fp32", 0.25),  # 16 GOP/s: above the ISA 10 and the GEMM 8
        variant("openvino-fp32-winograd", "fp32", 0.2, executed=OPS / 4),  # effective 20, executed 5
    ]
    predictions = dict.fromkeys([v["variant"] for v in variants], REFERENCE)
    summary = summarise(MACHINE, variants, predictions, "pytorch-fp32", frames=1, min_agreement=0.98)
    assert summary["peaks"]["fp32"] == {"theoretical": 10.0, "measured": 16.0, "peak": 16.0}
    for row in summary["variants"]:
        assert row["percent_of_peak"] <= 100.0, row["variant"]
    winograd = next(row for row in summary["variants"] if row["variant"] == "openvino-fp32-winograd")
    assert winograd["effective_gops"] == 20.0 and winograd["executed_gops"] == 5.0


def test_peaks_without_an_isa_figure_use_what_was_measured():
    result = peaks({"gemm_gflops": {"best": 8.0}}, [variant("openvino-bf16", "bf16", 0.5)])
    assert result["fp32"]["peak"] == 8.0 and result["bf16"] == {"theoretical": None, "measured": 8.0, "peak": 8.0}


def test_the_reference_must_have_been_timed():
    with pytest.raises(ValueError, match="reference variant pytorch-fp32 was not timed"):
        summarise(
            MACHINE,
            [variant("onnxruntime-fp32", "fp32", 1.0)],
            {"onnxruntime-fp32": REFERENCE},
            "pytorch-fp32",
            1,
            0.98,
        )


def test_report_cli_writes_markdown_json_and_html(tmp_path):
    files = []
    for name, median in (("pytorch-fp32", 2.0), ("openvino-fp32", 1.0)):
        data = variant(name, "fp32", median)
        data["predictions"] = str(tmp_path / f"{name}.npy")
        np.save(data["predictions"], REFERENCE)
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        files.append(tmp_path / f"{name}.json")
    (tmp_path / "machine.json").write_text(json.dumps(MACHINE))
    outputs = ["--markdown", tmp_path / "b.md", "--json", tmp_path / "b.json", "--html", tmp_path / "b.html"]
    run_script(
        "benchmark_report.py", "--machine", tmp_path / "machine.json", "--variants", *files, "--frames", 3, *outputs
    )
    summary = json.loads((tmp_path / "b.json").read_text())
    assert summary["fastest"] == "openvino-fp32" and [row["variant"] for row in summary["variants"]] == [
        "pytorch-fp32",
        "openvino-fp32",
    ]
    assert "openvino-fp32 (fastest)" in (tmp_path / "b.md").read_text()
    assert "<table>" in (tmp_path / "b.html").read_text()
    missing = run_script(
        "benchmark_report.py",
        "--machine",
        tmp_path / "machine.json",
        "--variants",
        files[1],
        "--frames",
        3,
        *outputs,
        check=False,
    )
    assert missing.returncode == 2 and "reference variant pytorch-fp32 was not timed" in missing.stderr
