"""Ascend without an NPU: command construction, ais_bench output mapping, and the missing-tool errors."""

import json
import os
import sys

import numpy as np
import pytest

from deeplabv3_pipeline.backends.ascend import atc as ascend
from deeplabv3_pipeline.backends.ascend.runner import file_run
from deeplabv3_pipeline.benchmark.timing import inference_summary
from deeplabv3_pipeline.errors import UserError

from ..conftest import REPO, SHAPE, run_infer

FAKE_CANN = REPO / "tests" / "fake_cann"


@pytest.mark.parametrize("soc", ["Ascend310", "Ascend310P3", "Ascend910B"])
@pytest.mark.parametrize("shape", [(1024, 2048), (512, 1024)])
def test_atc_command_is_the_guides(soc, shape):
    command = ascend.atc_command("m/deeplabv3_sim_bs1.onnx", f"m/deeplabv3_bs1_{soc}.om", soc, shape)
    assert command == [
        "atc",
        "--framework=5",
        "--model=m/deeplabv3_sim_bs1.onnx",
        f"--output=m/deeplabv3_bs1_{soc}",  # atc appends .om itself
        "--input_format=NCHW",
        f"--input_shape=input:1,3,{shape[0]},{shape[1]}",
        "--log=error",
        f"--soc_version={soc}",
    ]


def test_atc_extra_args_are_split_like_a_shell():
    command = ascend.atc_command("a.onnx", "b.om", "Ascend310P3", (64, 128), "fp16", "--op_debug_level=0 --log=info")
    assert command[-2:] == ["--op_debug_level=0", "--log=info"]


def test_atc_precision_fp32_is_asked_for_and_recorded():
    command = ascend.atc_command("a.onnx", "b.om", "Ascend310P3", (64, 128), "fp32")
    assert command[-1] == "--precision_mode=force_fp32"
    assert ascend.precision_record("fp32") == {
        "inference_precision": "fp32",
        "precision_evidence": "ATC --precision_mode force_fp32",
    }
    assert ascend.precision_record("fp16")["inference_precision"] == "fp16"  # the guide's figures


def test_atc_precision_mode_by_hand_is_refused():
    with pytest.raises(UserError, match="set config `precision`"):
        ascend.atc_command("a.onnx", "b.om", "Ascend310", (64, 128), "fp16", "--precision_mode=allow_mix_precision")


def test_ais_bench_command_uses_a_fixed_output_dirname():
    command = ascend.ais_bench_command("python3 -m ais_bench", "x.om", "prep", "out", "shard0", 1)
    assert command == [
        "python3",
        "-m",
        "ais_bench",
        "--model",
        "x.om",
        "--input",
        "prep",
        "--output",
        "out",
        "--output_dirname",
        "shard0",
        "--outfmt",
        "BIN",
        "--batchsize",
        "1",
        "--device",
        "1",
    ]


def write_ais_bench_output(folder, dirname, old_layout):
    produced = folder / dirname
    produced.mkdir(parents=True)
    for stem in ("a_000000_000001_leftImg8bit", "b_000000_000002_leftImg8bit"):
        np.zeros((1, 1, 2, 2), np.int64).tofile(produced / f"{stem}_0.bin")
    summary = {
        "NPU_compute_time": {"min": 180.0, "max": 190.0, "mean": 187.1, "median": 187.0, "percentile(99%)": 189.9},
        "throughput": 5.3444,
    }
    target = produced / "sumary.json" if old_layout else folder / f"{dirname}_summary.json"
    target.write_text(json.dumps(summary))


@pytest.mark.parametrize("old_layout", [False, True])
def test_ais_bench_output_is_mapped_to_the_common_layout(tmp_path, old_layout):
    write_ais_bench_output(tmp_path / "ais", "shard0", old_layout)
    raw = ascend.collect_ais_bench_output(tmp_path / "ais", "shard0", tmp_path / "common")
    run = file_run(raw, wall_seconds=2.0)
    summary = inference_summary("ascend", run.compute_ms, run.wall_s, run.files, {}, compute_stats=run.compute_stats)
    summary.update(run.extra)
    assert sorted(p.name for p in (tmp_path / "common").iterdir()) == [
        "a_000000_000001_leftImg8bit_0.bin",
        "b_000000_000002_leftImg8bit_0.bin",
    ]
    assert summary["throughput"] == 5.3444  # kept as ais_bench reported it
    assert summary["NPU_compute_time"]["mean"] == 187.1
    assert summary["num_images"] == 2 and summary["end_to_end"]["images_per_s"] == 1.0
    assert summary["filesinfo"]["0"]["infiles"] == ["a_000000_000001_leftImg8bit.bin"]


def test_missing_summary_is_a_clear_error(tmp_path):
    (tmp_path / "shard0").mkdir()
    np.zeros(4, np.int64).tofile(tmp_path / "shard0" / "x_0.bin")
    with pytest.raises(UserError, match=r"neither shard0_summary\.json nor shard0/sumary\.json"):
        ascend.collect_ais_bench_output(tmp_path, "shard0", tmp_path / "out")


def test_missing_tools_are_named_with_how_to_get_them(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "CANN toolkit" in ascend.missing_tool(["atc"])
    assert "set_env.sh" in ascend.missing_tool(["atc"])
    problem = ascend.missing_tool([sys.executable, "-m", "ais_bench_not_installed_here"])
    assert "cannot import ais_bench_not_installed_here" in problem and "ais_bench wheels" in problem


def test_infer_cli_without_ais_bench_fails_before_running(prep_dir, tmp_path):
    om = tmp_path / "x.om"
    om.write_text("{}")
    result = run_infer(
        "ascend", om, prep_dir, tmp_path / "out", "--ais-bench", f"{sys.executable} -m ais_bench", check=False
    )
    assert result.returncode == 2 and "cannot import ais_bench" in result.stderr


def test_infer_cli_through_fake_ais_bench_equals_onnxruntime(prep_dir, onnx_models, tmp_path, monkeypatch):
    """The whole ascend path of infer.py, with tests/fake_cann standing in for CANN."""
    om = tmp_path / "deeplabv3_bs1_Ascend310P3.om"
    om.write_text(json.dumps({"onnx": str(onnx_models[1])}))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_CANN), os.environ.get("PYTHONPATH", "")]))
    bins = sorted(prep_dir.glob("*.bin"))[1:3]
    run_infer(
        "ascend",
        om,
        bins,
        tmp_path / "npu",
        "--ais-bench",
        f"{sys.executable} -m ais_bench",
    )
    run_infer("onnxruntime", onnx_models[1], bins, tmp_path / "cpu")
    npu = sorted((tmp_path / "npu").glob("*_0.bin"))
    assert [p.name for p in npu] == sorted(p.name for p in (tmp_path / "cpu").glob("*_0.bin"))
    assert len(npu) == 2  # exactly the two files given, of the 4 in the folder
    for path in npu:
        assert path.stat().st_size == SHAPE[0] * SHAPE[1] * 8
        np.testing.assert_array_equal(np.fromfile(path, np.int64), np.fromfile(tmp_path / "cpu" / path.name, np.int64))
    summary = json.loads((tmp_path / "npu" / "summary.json").read_text())
    assert summary["backend"] == "ascend" and summary["throughput"] > 0
    assert summary["inference_precision"] == "fp16"  # ATC's default, the guide's
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ais_bench")], "scratch folder removed"
