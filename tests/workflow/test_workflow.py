"""End-to-end Snakemake runs on a tiny synthetic dataset: artifacts, reruns, shards, bad input, Ascend dry run."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from deeplabv3_pipeline.cpu import has_bf16
from deeplabv3_pipeline.data.cityscapes import dataset_id
from deeplabv3_pipeline.data.demo import demo_frames, make_demo_dataset

from ..conftest import REPO
from ..helpers import (
    DEMO_CHECKPOINT_PATH,
    DEMO_DATA,
    EXPORT_PATH,
    SHAPE,
    SIM_MODEL_PATH,
    TAG,
    TINY,
    TINY_KEY,
    cell_result,
    clean_figures,
    copy_run,
    figures,
    infer_dir,
    key,
    merged,
    planned_rules,
    read_result,
    report_dir,
    rules_in,
    scenario,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow


def test_every_artifact_has_its_name_shape_and_dtype(tiny_run):
    results = tiny_run / "results"
    stems = sorted(
        p.name.removesuffix("_leftImg8bit.png") for p in results.glob(f"demo/cityscapes{TAG}/leftImg8bit/val/*/*.png")
    )
    assert len(stems) == 3
    for stem in stems:
        prep = results / "prep_dataset" / DEMO_DATA / f"{stem}_leftImg8bit.bin"
        assert prep.stat().st_size == 3 * SHAPE[0] * SHAPE[1] * 4  # float32 1x3xHxW
        prediction = tiny_run / infer_dir() / f"{stem}_leftImg8bit_0.bin"
        classes = np.fromfile(prediction, dtype=np.int64)
        assert classes.size == SHAPE[0] * SHAPE[1] and classes.min() >= 0 and classes.max() < 19
        assert list(results.glob(f"labels/{DEMO_DATA}/*/{stem}_gtFine_labelTrainIds.png"))
    model = onnx.load(str(tiny_run / SIM_MODEL_PATH))
    assert model.graph.input[0].name == "input" and model.graph.output[0].name == "output"
    assert (tiny_run / EXPORT_PATH).is_file()
    summary = json.loads((tiny_run / infer_dir() / "summary.json").read_text())
    assert summary["num_images"] == 3 and summary["throughput"] > 0 and summary["inference_precision"] == "fp32"
    result = json.loads((results / "result.json").read_text())
    assert result == json.loads((tiny_run / cell_result()).read_text())
    assert result["backend"] == "onnxruntime" and result["num_images"] == 3
    assert result["model"] == TINY_KEY and result["variant"] == "onnxruntime-fp32"
    assert set(result["per_class"]) >= {"road", "car", "bicycle"} and len(result["per_class"]) == 19
    assert result["model_sha256"] and len(result["model_sha256"]) == 64
    assert result["config"]["model"]["input_shape"] == SHAPE
    assert result["synthetic_inputs"] == "dataset and checkpoint"
    assert result["inference_precision"] == "fp32" and result["dataset"]["id"] == "demo"
    assert len(result["checkpoint_sha256"]) == 64 and sorted(result["predictions"]) == sorted(stems)
    assert (results / "result.txt").read_text() == f"aAcc: {result['aAcc']}\nmIoU: {result['mIoU']}\n"
    for stage in (
        f"export_onnx/{TINY_KEY}",
        f"simplify_onnx/{TINY_KEY}",
        f"labels/{DEMO_DATA}/shard0",
        f"preprocess/{DEMO_DATA}/shard0",
        f"evaluate/{DEMO_DATA}/{TINY_KEY}/onnxruntime-fp32",
    ):
        assert (results / "logs" / f"{stage}.log").is_file()
        assert (results / "benchmarks" / f"{stage}.tsv").is_file()


def test_the_report_works_after_the_result_alone(tiny_run, tmp_path):
    """`snakemake results/result.json` (how tiny_run was made), then `snakemake --report`: the figures exist."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    snakemake(workdir, "--report", "results/report.html")
    assert f"{report_dir()}/per_class_iou.png" in (workdir / "results" / "report.html").read_text()


def test_another_backends_settings_rerun_nothing(tiny_run, tmp_path):
    """A backend's result records only its own settings: a TensorRT or Ascend setting re-evaluates no
    ONNX Runtime result."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    changed = {"tensorrt": {"workspace_gib": 2}, "ascend": {"device": 3}}
    write_config(workdir, merged(TINY, changed))
    assert planned_rules(workdir) == set()
    write_config(workdir, merged(TINY, {"onnxruntime": {"providers": ["CPUExecutionProvider", "X"]}}))
    assert "evaluate" in planned_rules(workdir)  # its own section does


def test_second_run_has_nothing_to_do(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")  # the run itself is only read: the tests share it
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/result.json").stdout


def test_opset_change_makes_its_own_model_and_switching_back_reruns_nothing(tiny_run, tmp_path):
    """model.opset 13: a model of its own (key deeplabv3@64x128-opset13) from export on, the frames' files
    reused; back to 11, the first model and cell are found again: only the published copy is made."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    bins = sorted((workdir / "results" / "prep_dataset" / DEMO_DATA).glob("*.bin"))
    before = {path: path.stat().st_mtime_ns for path in [*bins, workdir / EXPORT_PATH]}
    write_config(workdir, merged(TINY, {"model": {"opset": 13}}))
    ran = rules_in(snakemake(workdir, "results/result.json").stdout)
    assert {"export_onnx", "simplify_onnx", "infer", "evaluate"} <= ran
    assert not {"preprocess", "labels", "demo_dataset"} & ran
    assert {path: path.stat().st_mtime_ns for path in before} == before
    opset13 = f"results/models/{TINY_KEY}-opset13/{TINY_KEY}-opset13.onnx"
    assert onnx.load(str(workdir / opset13)).opset_import[0].version == 13
    assert read_result(workdir)["model"] == f"{TINY_KEY}-opset13"
    write_config(workdir, TINY)
    assert planned_rules(workdir) == {"result"}  # the copy to results/result.json, nothing computed
    assert "Nothing to be done" in snakemake(workdir, "-n", str(cell_result())).stdout


def test_slide_mode_reaches_export_verify_and_the_pytorch_reference_and_reruns_export_onward(tiny_run, tmp_path):
    """model.test_mode/crop_size/stride: the flags of every step that builds the graph, planned from the
    tiny run: export onward runs again, preprocessing and labels do not."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    slide = {"model": {"test_mode": "slide", "crop_size": [48, 48], "stride": [32, 32]}}
    write_config(workdir, merged(TINY, slide, {"matrix": {"variants": ["pytorch-fp32", "onnxruntime-fp32"]}}))
    dry = snakemake(workdir, "-n", "-p", "results/result.json", "results/matrix.json").stdout
    flags = "--test-mode slide --crop-size 48 48 --stride 32 32"
    commands = [line for line in dry.splitlines() if flags in line]
    assert any("export_onnx.py" in line for line in commands) and any("verify_onnx.py" in line for line in commands)
    assert any("infer.py" in line and "--backend pytorch" in line for line in commands)  # the reference: same mode
    ran = rules_in(dry)
    assert {"export_onnx", "verify_onnx", "simplify_onnx", "infer", "evaluate"} <= ran
    assert not {"preprocess", "labels", "demo_dataset", "demo_checkpoint"} & ran


def test_winograd_on_openvino_reruns_rewrite_inference_and_evaluation_only(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    sim_before = (workdir / SIM_MODEL_PATH).stat().st_mtime_ns
    write_config(workdir, merged(TINY, {"backend": "openvino", "winograd": {"enabled": True}}))
    ran = rules_in(snakemake(workdir, "results/result.json").stdout)
    assert {"winograd_onnx", "infer", "evaluate"} <= ran
    assert not {"export_onnx", "simplify_onnx", "preprocess", "labels"} & ran
    assert (workdir / SIM_MODEL_PATH).stat().st_mtime_ns == sim_before
    result = json.loads((workdir / "results" / "result.json").read_text())
    assert result["variant"] == "openvino-fp32-winograd"
    assert result["backend"] == "openvino" and result["model_file"].endswith("_sim_bs1_winograd.onnx")
    # R18-D8's 3x3 convolutions with 256 inputs or more (layer3, layer4; the ASPP's: mostly padding here)
    assert result["winograd"]["tile"] == 4 and len(result["winograd"]["sites"]) == 8
    assert result["winograd"]["agreement"]["mean"] >= 0.99
    direct = json.loads((tiny_run / "results" / "result.json").read_text())  # onnxruntime, direct model
    assert abs(result["mIoU"] - direct["mIoU"]) < 1.0  # the same function up to rounding
    onnxruntime_result = workdir / cell_result()
    assert json.loads(onnxruntime_result.read_text())["model_file"].endswith(f"{TINY_KEY}_sim_bs1.onnx")
    # tile 2 is a new model: the rewrite and what follows it would run again, nothing before it.
    write_config(workdir, merged(TINY, {"backend": "openvino", "winograd": {"enabled": True, "tile": 2}}))
    planned = planned_rules(workdir)
    assert {"winograd_onnx", "infer", "evaluate"} <= planned
    assert not {"simplify_onnx", "preprocess"} & planned


def test_missing_dataset_root_fails_fast_naming_the_path(tmp_path):
    write_config(tmp_path, merged(TINY, {"dataset": {"root": str(tmp_path / "no_cityscapes")}}))
    run = snakemake(tmp_path, "results/result.json", check=False)
    assert run.returncode != 0
    assert f"dataset root {tmp_path / 'no_cityscapes'} does not exist" in run.stdout
    assert not (tmp_path / "results").exists()


def test_a_bad_config_value_or_key_is_one_line_naming_the_key_and_the_fix(tmp_path):
    """No schema dump: the key, the expected form and an example; a typo's closest valid key."""
    for change, line in (
        ({"shards": "two"}, "error: config key shards is 'two': expected an integer of at least 1, e.g. 1"),
        (
            {"model": {"input_shpae": [64, 128]}},
            "error: config key model.input_shpae is unknown: did you mean model.input_shape?",
        ),
    ):
        write_config(tmp_path, merged(TINY, change))
        run = snakemake(tmp_path, "-n", check=False)
        assert run.returncode != 0 and line in run.stdout.splitlines(), run.stdout
        assert "properties" not in run.stdout and "additionalProperties" not in run.stdout  # no schema


def test_ascend_dry_run_prints_atc_per_soc_and_real_run_needs_cann(tmp_path):
    write_config(tmp_path, scenario("ascend"))
    dry = snakemake(tmp_path, "-n", "-p")
    for soc in ("Ascend310", "Ascend310P3"):
        assert (
            f"atc --framework=5 --model={SIM_MODEL_PATH}"
            f" --output=results/models/{TINY_KEY}/fp32/{TINY_KEY}_bs1_{soc} --input_format=NCHW"  # precision: fp32
            f" --input_shape=input:1,3,64,128 --log=error --soc_version={soc}" in dry.stdout
        )
    assert f"--backend ascend --model results/models/{TINY_KEY}/fp32/{TINY_KEY}_bs1_Ascend310.om" in dry.stdout
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    real = snakemake(tmp_path, check=False, env=env)
    assert real.returncode != 0 and "`atc` is not on PATH" in real.stdout and "CANN toolkit" in real.stdout
    assert not (tmp_path / "results").exists(), "no job may start without the tools"


def test_ascend_backend_end_to_end_with_fake_cann(tiny_run, tmp_path):
    """The Ascend rules wired together, with tests/fake_cann for atc and ais_bench (ONNX Runtime inside)."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    write_config(workdir, merged(TINY, {"backend": "ascend", "ascend": {"ais_bench": "python -m ais_bench"}}))
    fake = REPO / "tests" / "fake_cann"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", PYTHONPATH=str(fake))
    run = snakemake(workdir, env=env)
    assert "rule export_onnx:" not in run.stdout  # reuses the ONNX model of the earlier run
    ascend = json.loads((workdir / "results" / "result.json").read_text())
    cpu = json.loads((tiny_run / "results" / "result.json").read_text())
    assert ascend["backend"] == "ascend" and ascend["mIoU"] == cpu["mIoU"]
    assert (workdir / "results" / "models" / TINY_KEY / "fp32" / f"{TINY_KEY}_bs1_Ascend310P3.om").is_file()


def tensorrt_problems() -> list[str]:
    from deeplabv3_pipeline.backends.tensorrt.engine import environment_problems

    return environment_problems()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_dry_run_plans_engine_calibration_and_inference(tmp_path, precision):
    """What `snakemake -n -p` shows for backend tensorrt, on any machine (no GPU needed to plan)."""
    write_config(tmp_path, merged(TINY, {"backend": "tensorrt", "precision": precision, "tensorrt": {"device": 1}}))
    dry = snakemake(tmp_path, "-n", "-p").stdout
    models = f"results/models/{TINY_KEY}"
    engine = f"{models}/{TINY_KEY}_bs1_{precision}.engine"
    source = {
        "fp32": SIM_MODEL_PATH,
        "fp16": f"{models}/{TINY_KEY}_sim_bs1_fp16.onnx",  # TensorRT 11 computes in the model's types
        "int8": f"{models}/{TINY_KEY}_sim_bs1_int8_sym.onnx",
    }[precision]
    assert (
        f"scripts/build_engine.py {source} {engine} --precision {precision} --workspace-gib 8"
        f" --optimization-level 3 --device 1 --record {models}/{TINY_KEY}_bs1_{precision}.json" in dry
    )
    assert f"--backend tensorrt --model {engine}" in dry and f"--precision {precision}" in dry
    infer_rule = f"infer_deeplabv3_tensorrt_{precision}"
    infer = re.search(rf"^rule {infer_rule}:\n\s+input: (.*)$", dry, flags=re.MULTILINE).group(1).split(", ")
    assert f"{models}/{TINY_KEY}_bs1_{precision}.json" in infer  # the runner reads the build record
    assert "--device 1" in dry
    assert f"engine={models}/{TINY_KEY}_bs1_{precision}.json" in dry  # evaluate.py --model-record
    calibration = re.search(r"quantize_onnx\.py (\S+) (\S+) (.*?) --calibration-data (.*?) --calibration-images", dry)
    if precision == "int8":
        # symmetric int8 activations (zero point 0, what TensorRT takes), calibrated on the workflow's own bins
        assert calibration.group(2) == f"{models}/{TINY_KEY}_sim_bs1_int8_sym.onnx"
        assert "--activation-type int8 --symmetric-activations" in calibration.group(3)
        bins = calibration.group(4).split()
        assert bins and all(b.startswith(f"results/prep_dataset/{DEMO_DATA}/") and b.endswith(".bin") for b in bins)
        assert f"quantization={models}/{TINY_KEY}_sim_bs1_int8_sym.json" in dry
    else:
        assert calibration is None
    fp16_conversion = f"scripts/convert_fp16.py {SIM_MODEL_PATH} {models}/{TINY_KEY}_sim_bs1_fp16.onnx"
    assert (fp16_conversion in dry) == (precision == "fp16")


def job_resources_in(dry: str, rule: str) -> dict[str, dict[str, int]]:
    """{model: {"mem_mb": .., "runtime": ..}} of each ``rule`` job a dry run lists."""
    found = {}
    for block in re.findall(rf"^rule {rule}:\n((?:\s{{4}}.*\n)+)", dry, flags=re.MULTILINE):
        model = re.search(r"wildcards: model=(\S+)", block).group(1)
        resources = re.search(r"resources: (.*)", block).group(1)
        found[model] = {key: int(re.search(rf"\b{key}=(\d+)", resources).group(1)) for key in ("mem_mb", "runtime")}
    return found


def test_export_jobs_are_sized_by_their_model_unless_the_config_gives_numbers(tmp_path):
    """resources.export_onnx auto: each model's export, verify and simplify job asks for what its footprint
    (measured by the start check) needs (model/footprint.py); a number is used for every model."""
    cgnet = {"name": "cgnet", "config": "cgnet_fcn_4xb4-60k_cityscapes-680x680", "checkpoint": ""}  # 2 MB of weights
    matrix = {"models": [cgnet], "variants": ["onnxruntime-fp32"]}
    write_config(tmp_path, merged(TINY, {"matrix": matrix}))
    dry = snakemake(tmp_path, "-n", "results/matrix.json").stdout
    for rule in ("export_onnx", "verify_onnx", "simplify_onnx"):
        sized = job_resources_in(dry, rule)
        assert sized[key("cgnet")]["mem_mb"] < sized[TINY_KEY]["mem_mb"] < 8000, (rule, sized)
        assert all(job["runtime"] >= 5 for job in sized.values())
    write_config(tmp_path, merged(TINY, {"matrix": matrix, "resources": {"export_onnx": {"mem_mb": 5000}}}))
    fixed = job_resources_in(snakemake(tmp_path, "-n", "results/matrix.json").stdout, "export_onnx")
    assert {job["mem_mb"] for job in fixed.values()} == {5000}
    assert fixed == {model: {**job, "mem_mb": 5000} for model, job in job_resources_in(dry, "export_onnx").items()}


def test_gpu_backends_that_cannot_run_here_stop_the_run_before_any_job_naming_each(tmp_path):
    """Scenario gpu (PyTorch on cuda:0) with a TensorRT cell, where PyTorch sees no GPU (CUDA_VISIBLE_DEVICES
    hides any) and TensorRT is not installed: one error line naming each backend, what it lacks and the fix;
    no job run. (It plans anywhere: make lint's dry run of the scenario.)"""
    problems = tensorrt_problems()
    if not problems:
        pytest.skip("this machine can build and run TensorRT engines: the error case cannot happen")
    gpu = scenario("gpu")
    write_config(tmp_path, merged(gpu, {"matrix": {"variants": [*gpu["matrix"]["variants"], "tensorrt-fp16"]}}))
    real = snakemake(tmp_path, "results/matrix.json", check=False, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert real.returncode != 0
    (line,) = [line for line in real.stdout.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: backend pytorch cannot run here: pytorch.device cuda:0: ")
    assert "set pytorch.device: cpu; backend tensorrt cannot run here: " in line and problems[0] in line
    assert "envs/requirements-gpu.txt" in line
    assert not (tmp_path / "results").exists(), "no job may start without a GPU"


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_end_to_end_on_a_gpu(tiny_run, tmp_path, precision):
    problems = tensorrt_problems()
    if problems:
        pytest.skip(f"NOT RUN: {'; '.join(problems)}")
    workdir = copy_run(tiny_run, tmp_path / "copy")
    write_config(workdir, merged(TINY, {"backend": "tensorrt", "precision": precision}))
    snakemake(workdir)
    result = read_result(workdir)
    assert result["backend"] == "tensorrt" and result["inference_precision"] == precision
    assert result["engine"]["settings"]["precision"] == precision
    assert (workdir / "results" / "models" / TINY_KEY / f"{TINY_KEY}_bs1_{precision}.engine").is_file()
    tensorrt = workdir / infer_dir(f"tensorrt-{precision}")
    agreement = [
        np.mean(np.fromfile(path, np.int64) == np.fromfile(tensorrt / path.name, np.int64))
        for path in sorted((workdir / infer_dir()).glob("*_0.bin"))
    ]
    assert min(agreement) >= {"fp32": 0.999, "fp16": 0.99, "int8": 0.95}[precision], agreement


# README commands that other tests run: the SLURM profile (test_slurm.py) and the support table over
# every family (49 min; one entry of it end to end: test_matrix.py's support-table test)
RUN_ELSEWHERE = ("--workflow-profile", "results/zoo/support.md")


def readme_commands() -> list[list[str]]:
    """The workflow commands of the README's bash blocks, in order, as Snakemake arguments
    (`make run` as the Makefile's run target spells it), but those RUN_ELSEWHERE."""
    makefile = (REPO / "Makefile").read_text()
    make_run = re.search(r"^run: .*\n\t\$\(BIN\)/snakemake (.*)$", makefile, flags=re.MULTILINE).group(1)
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line == "make run":
                commands.append(shlex.split(make_run.replace("$(CORES)", "2")))
            elif line.startswith("snakemake ") and not any(part in line for part in RUN_ELSEWHERE):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_says_once_how_the_venv_is_used_and_spells_every_command_alike():
    """Its commands run in the venv that `make run`/`make test` make: activated once, then plain names."""
    readme = (REPO / "README.md").read_text()
    assert readme.count("source .venv/bin/activate") == 1
    assert ".venv/bin/snakemake" not in readme and ".venv/bin/python" not in readme
    # the two README tools that failed outside the venv run in it (the venv's python, as after activating)
    listed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "zoo.py"), "list", "--family", "pspnet"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024" in listed.stdout
    planning = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_planning.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "--frames" in planning.stdout


def test_the_readme_flow_works_in_its_order_then_the_mIoU_gate(matrix_run, tmp_path):
    """main run -> report -> matrix -> layer comparison -> report again -> benchmark, as the README shows
    them (from the matrix test's run, whose cells the README's default matrix, one model x 3 variants,
    finds)."""
    commands = readme_commands()
    assert commands == [
        ["--cores", "2"],
        ["--report", "results/report.html"],
        ["--cores", "2", "results/matrix.json"],
        ["--cores", "2", "debug"],
        ["--report", "results/report.html", "all", "results/matrix.json"],
        ["--cores", "2", "results/benchmark.md"],
    ]
    workdir = copy_run(matrix_run, tmp_path / "copy")
    # the README's benchmark command times one variant here (every variant: test_default_benchmark_plans...)
    benchmark = {"variants": ["onnxruntime-fp32"], "reference": "onnxruntime-fp32", "images": 1, "repeats": 1}
    # (its `debug` has no debug.variants here: test_debug.py runs that target with them)
    write_config(workdir, merged(TINY, {"benchmark": benchmark}))
    runs = [snakemake(workdir, *command) for command in commands]
    assert not {"export_onnx", "infer", "evaluate"} & rules_in("".join(run.stdout for run in runs))
    report = (workdir / "results" / "report.html").read_text()
    assert f"{report_dir()}/per_class_iou.png" in report and "results/report/matrix.png" in report
    assert json.loads((workdir / "results" / "benchmark.json").read_text())["fastest"] == "onnxruntime-fp32"
    matrix = json.loads((workdir / "results" / "matrix.json").read_text())
    assert matrix["reference"] == "pytorch-fp32"
    rows = {row["variant"]: row for row in matrix["rows"]}
    assert list(rows) == ["pytorch-fp32", "onnxruntime-fp32", "openvino-fp32"]
    for name in ("onnxruntime-fp32", "openvino-fp32"):
        assert rows[name]["pixel_agreement"] > 0.999, name
        assert abs(rows[name]["delta_miou"]) < 0.5, name
        assert rows[name]["inference_precision"] == "fp32", name  # also on a CPU whose OpenVINO default is bf16
        assert rows[name]["published_miou"] == 76.7, name  # mmseg's metafile, for the tiny run's config
    # the table is printed (by the first command: the default target keeps an existing matrix current)
    assert "pixel_agreement" in "".join(run.stdout for run in runs)
    kept = (workdir / cell_result()).read_text()
    write_config(workdir, merged(TINY, {"expect": {"miou": 79.09, "tolerance": 0.3}}))
    gated = snakemake(workdir, "results/result.json", check=False)
    assert gated.returncode != 0 and "outside the expected 79.09 +/- 0.3" in gated.stdout
    assert (workdir / cell_result()).read_text() == kept


def test_fewer_demo_images_and_shard_changes_give_a_clean_runs_figures(tiny_run, tmp_path):
    """demo.images 3 -> 2, then shards 1 -> 2 -> 1: each result is a clean run's on the same frames."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    two_frames = [frame.frame for frame in demo_frames(2)]
    expected = clean_figures(tiny_run, two_frames, tmp_path)  # frames are the same whatever the count
    for shards in (1, 2, 1):
        write_config(workdir, merged(TINY, {"demo": {"images": 2}, "shards": shards}))
        run = snakemake(workdir, "results/result.json")
        result = read_result(workdir)
        summary = json.loads((workdir / infer_dir() / "summary.json").read_text())
        assert summary["shards"] == shards and summary["num_images"] == 2
        if shards == 2:
            assert "preprocess_shard1" in run.stdout and "infer_deeplabv3_onnxruntime_fp32_shard1" in run.stdout
        assert sorted(result["per_image"]) == sorted(two_frames), shards
        assert figures(result) == expected, shards
    stale = workdir / infer_dir() / f"{demo_frames(3)[1].stem}_0.bin"
    assert stale.is_file()  # the third frame's prediction of the first run is still there, and was not read


def test_split_switch_keeps_each_splits_files_apart_and_reuses_them(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    val_bins = {p: p.stat().st_mtime_ns for p in (workdir / "results" / "prep_dataset" / DEMO_DATA).glob("*.bin")}
    write_config(workdir, merged(TINY, {"dataset": {"split": "test"}}))
    snakemake(workdir, "results/result.json")
    result = read_result(workdir)
    assert result["num_images"] == 3 and result["dataset"]["split"] == "test"
    assert set(result["predictions"].values()) == {
        f"results/infer/demo/test{TAG}/{TINY_KEY}/onnxruntime-fp32/{frame.stem}_0.bin" for frame in demo_frames(3)
    }
    assert {p: p.stat().st_mtime_ns for p in val_bins} == val_bins  # val's bins untouched
    write_config(workdir, TINY)  # back to val: its bins, predictions, result and figures are found again
    assert planned_rules(workdir) == {"result"}


def test_a_dataset_root_holding_fewer_frames_gives_a_clean_runs_figures(tiny_run, tmp_path):
    """The issue's case: a root with 3 frames, then a copy with 2 of them, then back."""
    full, subset = tmp_path / "full", tmp_path / "subset"
    make_demo_dataset(full, "val", 3, tuple(SHAPE), seed=5)
    shutil.copytree(full, subset)
    dropped = demo_frames(3)[1]
    for path in (dropped.image(subset, "val"), dropped.label_ids(subset, "val")):
        path.unlink()
    workdir = copy_run(tiny_run, tmp_path / "copy")  # the models (same checkpoint) are reused
    write_config(workdir, merged(TINY, {"dataset": {"root": str(full)}}))
    snakemake(workdir, "results/result.json")
    on_full = read_result(workdir)
    assert on_full["num_images"] == 3 and on_full["synthetic_inputs"] == "checkpoint"
    assert on_full["dataset"]["id"] == dataset_id(full)
    kept = [frame.frame for frame in demo_frames(3) if frame != dropped]
    expected = clean_figures(workdir, kept, tmp_path)
    write_config(workdir, merged(TINY, {"dataset": {"root": str(subset)}}))
    snakemake(workdir, "results/result.json")
    on_subset = read_result(workdir)
    assert on_subset["num_images"] == 2 and sorted(on_subset["per_image"]) == sorted(kept)
    assert figures(on_subset) == expected
    write_config(workdir, merged(TINY, {"dataset": {"root": str(full)}}))
    # the full root's bins, predictions, result and figures are found again
    assert planned_rules(workdir) == {"result"}


@pytest.fixture
def checkpoint_server(tiny_run, tmp_path):
    """The demo checkpoint under an OpenMMLab-style name (sha256 prefix), served on 127.0.0.1."""
    from deeplabv3_pipeline.io.binio import file_sha256

    served = tmp_path / "served"
    served.mkdir()
    source = tiny_run / DEMO_CHECKPOINT_PATH
    name = f"deeplabv3_random-{file_sha256(source)[:8]}.pth"
    shutil.copyfile(source, served / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
    server.shutdown()
    thread.join(timeout=10)


def test_checkpoint_url_is_fetched_once_into_the_cache_and_used(tiny_run, checkpoint_server, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    name = checkpoint_server.rsplit("/", 1)[1]
    write_config(workdir, merged(TINY, {"model": {"checkpoint": checkpoint_server, "cache_dir": "cache"}}))
    fetched = snakemake(workdir, f"cache/{name}")
    assert "rule fetch_checkpoint:" in fetched.stdout
    assert (workdir / "cache" / name).read_bytes() == (workdir / DEMO_CHECKPOINT_PATH).read_bytes()
    planned = snakemake(workdir, "-n", "-p", "results/result.json").stdout
    assert "rule fetch_checkpoint:" not in planned  # once
    assert f"--checkpoint cache/{name}" in planned and "rule export_onnx:" in planned


def test_bf16_is_run_and_recorded_as_bf16_or_refused_naming_the_cpu_feature(tiny_run, tmp_path):
    """precision: bf16 on OpenVINO: recorded as bf16 on a CPU with BF16; elsewhere a clear error, nothing lost."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    write_config(workdir, merged(TINY, {"backend": "openvino", "precision": "bf16"}))
    run = snakemake(workdir, "results/result.json", check=False)
    if has_bf16():
        assert run.returncode == 0, run.stdout[-3000:]
        result = read_result(workdir)
        assert result["backend"] == "openvino" and result["inference_precision"] == "bf16"
        assert "INFERENCE_PRECISION_HINT=bf16" in result["precision_evidence"]
    else:
        assert run.returncode != 0 and "needs a CPU with native BF16 (avx512_bf16 or amx_bf16)" in run.stdout
    assert (workdir / cell_result()).is_file()  # the earlier result is kept
    write_config(workdir, merged(TINY, {"backend": "onnxruntime", "precision": "bf16"}))
    refused = snakemake(workdir, "-n", "results/result.json", check=False)
    assert refused.returncode != 0 and "backend onnxruntime has no precision bf16" in refused.stdout


def test_benchmark_times_the_workflows_own_models_and_names_the_fastest(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    variants = ["onnxruntime-fp32", "openvino-fp32"]
    benchmark = {"variants": variants, "reference": "onnxruntime-fp32", "images": 2, "repeats": 1}
    # the matrix of this config: only the configured cell (openvino-fp32 is then timed, not a cell)
    matrix = {"variants": ["onnxruntime-fp32"], "reference": "onnxruntime-fp32"}
    write_config(workdir, merged(TINY, {"benchmark": benchmark, "matrix": matrix}))
    run = snakemake(workdir, "results/benchmark.md")
    assert "rule export_onnx:" not in run.stdout  # the workflow's own model, not a second pipeline
    summary = json.loads((workdir / "results" / "benchmark.json").read_text())
    rows = {row["variant"]: row for row in summary["variants"]}
    assert list(rows) == variants and summary["reference"] == "onnxruntime-fp32" and summary["frames"] == 3
    assert rows["onnxruntime-fp32"]["speedup"] == 1.0 and rows["onnxruntime-fp32"]["pixel_agreement"] == 1.0
    for name, row in rows.items():
        assert row["inference_precision"] == "fp32", name
        assert row["pixel_agreement"] > 0.999 and row["median_s"] > 0, name
        assert 0 < row["percent_of_peak"] <= 100.0, name
    assert summary["fastest"] in rows and summary["machine"]["theoretical_peak_gops"]["fp32"] > 0
    timed = json.loads((workdir / "results" / "benchmark" / TINY_KEY / "openvino-fp32.json").read_text())
    # TEST01: the configured cell's variant is timed on frames that cell predicted, and computed the same
    consistency = rows["onnxruntime-fp32"]["cell_consistency"]
    assert consistency["equal"] and consistency["frames"] == 2
    assert rows["openvino-fp32"]["cell_consistency"] is None  # not a cell of this config
    assert "| yes (2 frames) |" in (workdir / "results" / "benchmark.md").read_text()
    assert timed["images"] == [f"results/prep_dataset/{DEMO_DATA}/{frame.stem}.bin" for frame in demo_frames(3)[::2]]
    assert "| onnxruntime-fp32" in (workdir / "results" / "benchmark.md").read_text()
    assert (workdir / "results" / "report" / "benchmark.html").is_file()
    # stamped with what it timed; --report packs it with that stamp
    made_for = f"{TINY_KEY}/onnxruntime-fp32, {TINY_KEY}/openvino-fp32 on {DEMO_DATA} at 64x128, config "
    assert summary["stamp"]["cells"] == [f"{TINY_KEY}/{variant}" for variant in variants]
    assert f"Made for {made_for}" in (workdir / "results" / "benchmark.md").read_text()
    snakemake(workdir, "--report", "results/report.html", "results/benchmark.md")
    assert made_for in (workdir / "results" / "report.html").read_text()
    # the default target is the config's, whatever is on disk: it does not take the benchmark in
    planned = snakemake(workdir, "-n", "--forcerun", "all").stdout
    assert "results/benchmark.md" not in planned and "results/report/benchmark.html" not in planned


def test_default_benchmark_plans_every_variant_this_cpu_runs(tiny_run, tmp_path):
    planned = snakemake(copy_run(tiny_run, tmp_path / "copy"), "-n", "results/benchmark.md").stdout
    variants = set(re.findall(rf"output: results/benchmark/{TINY_KEY}/([a-z0-9-]+)\.json", planned))
    expected = {"pytorch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8"}
    expected |= {"openvino-fp32-winograd"} | ({"pytorch-bf16", "openvino-bf16"} if has_bf16() else set())
    assert variants == expected
    for rule in ("quantize_onnx", "quantize_openvino", "winograd_onnx", "benchmark_machine"):
        assert f"rule {rule}:" in planned, rule


def test_storage_switches_delete_bins_and_predictions_once_the_run_is_done(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    storage = {"storage": {"keep_prep_bins": False, "keep_predictions": False}}
    write_config(workdir, merged(TINY, storage))
    run = snakemake(workdir, "--forcerun", "preprocess", "--", "results/result.json")  # preprocess onward again
    assert {"infer", "evaluate"} <= rules_in(run.stdout)
    assert read_result(workdir)["num_images"] == 3
    assert not list((workdir / "results" / "prep_dataset").rglob("*.bin"))
    assert not list((workdir / "results" / "infer").rglob("*_0.bin"))
    assert (workdir / infer_dir() / "summary.json").is_file()
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/result.json").stdout
