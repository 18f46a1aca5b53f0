"""The validation matrix in the workflow: the 2-model x 3-variant run on the tiny demo, a cell as result.json,
what adding a variant or a model plans, bad matrix input, a zoo model by name, a model refused at start."""

import json
import re

import pytest

from ..helpers import (
    DEMO_DATA,
    MATRIX,
    PSPNET,
    TINY,
    cell_result,
    copy_run,
    key,
    merged,
    planned_rules,
    replace_file,
    rules_in,
    scenario,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow

MATRIX_CONFIG = merged(TINY, {"matrix": MATRIX})
REFERENCE = "pytorch-fp32"  # matrix.reference's default


def planned_outputs(workdir, target: str) -> list[str]:
    """Every output file of a dry run of ``target``."""
    planned = snakemake(workdir, "-n", target).stdout
    return [path for line in re.findall(r"^\s+output: (.*)$", planned, flags=re.MULTILINE) for path in line.split(", ")]


@pytest.mark.slow
def test_the_matrix_has_a_row_per_cell_each_with_its_own_files(matrix_run, tmp_path):
    matrix = json.loads((matrix_run / "results" / "matrix.json").read_text())
    rows = matrix["rows"]
    assert [(row["model"], row["variant"]) for row in rows] == [
        (key(model), variant) for model in ("deeplabv3", "pspnet") for variant in MATRIX["variants"]
    ]
    assert "SYNTHETIC" in matrix["note"] and "SYNTHETIC" in (matrix_run / "results" / "matrix.md").read_text()
    seen = {}
    for row in rows:
        result = json.loads((matrix_run / row["result"]).read_text())
        assert row["result"] == str(cell_result(row["variant"], row["model"]))
        assert (result["model"], result["variant"]) == (row["model"], row["variant"])
        for path in result["predictions"].values():  # no two cells share a prediction file
            assert path.startswith(f"results/infer/{DEMO_DATA}/{row['model']}/{row['variant']}/") and path not in seen
            seen[path] = row["variant"]
        assert row["published_miou"] == {key("deeplabv3"): 76.7, key("pspnet"): 74.87}[row["model"]]
        assert row["inference_precision"] == row["precision"] == row["variant"].split("-")[1]
        assert set(row["delta_class_iou"]) == set(result["per_class"]) and len(row["delta_class_iou"]) == 19
        # the default gate (matrix.gate.relative 0.99) judged every cell; a reference passes its own
        assert row["gate"] == "pass" if row["variant"] == REFERENCE else row["gate"] in ("pass", "fail")
    by_cell = {(row["model"], row["variant"]): row for row in rows}
    for model in (key("deeplabv3"), key("pspnet")):
        for variant in ("onnxruntime-fp32", "openvino-fp32"):
            assert abs(by_cell[model, variant]["delta_miou"]) < 0.5, (model, variant)
    # PSPNet's pyramid pools bins that do not divide its 8x16 feature map: the export is exact there
    # (mmdeploy's floor(in/out) kernels agree on ~97 % of such pixels)
    verify = json.loads((matrix_run / f"results/models/{key('pspnet')}/{key('pspnet')}_verify.json").read_text())
    assert verify["differing_decisive_pixels"] == 0.0
    assert by_cell[key("pspnet"), "onnxruntime-fp32"]["pixel_agreement"] >= 0.9999
    assert by_cell[key("pspnet"), "openvino-fp32"]["result"].endswith(f"{key('pspnet')}/openvino-fp32/result.json")
    # the documented flow: the report holds the matrix
    workdir = copy_run(matrix_run, tmp_path / "report")
    snakemake(workdir, "--report", "results/report.html", "all", "results/matrix.json")
    assert "results/report/matrix.png" in (workdir / "results" / "report.html").read_text()


def test_a_cell_that_fails_its_gate_fails_the_run_after_the_table_is_written(matrix_run, tmp_path):
    """matrix.gate.fail: one cell's result lowered to half its reference's mIoU (as a cell that lost
    accuracy would be): the matrix is made again, names that cell, and the run exits 1 with the table kept."""
    workdir = copy_run(matrix_run, tmp_path / "run")
    write_config(workdir, merged(MATRIX_CONFIG, {"matrix": {"gate": {"fail": True}}}))
    lowered = workdir / cell_result("onnxruntime-fp32", key("pspnet"))
    reference = json.loads((workdir / cell_result(REFERENCE, key("pspnet"))).read_text())
    result = json.loads(lowered.read_text()) | {"mIoU": round(reference["mIoU"] / 2, 2)}
    replace_file(lowered, json.dumps(result).encode())
    failed = snakemake(workdir, "results/matrix.json", check=False)
    assert failed.returncode == 1 and rules_in(failed.stdout) == {"matrix"}, failed.stdout[-3000:]
    (line,) = [line for line in failed.stdout.splitlines() if line.startswith("error: ")]
    assert (
        f"fail their accuracy gate (matrix.gate): {key('pspnet')} onnxruntime-fp32: mIoU {result['mIoU']} is " in line
    )
    rows = {
        (row["model"], row["variant"]): row for row in json.loads((workdir / "results/matrix.json").read_text())["rows"]
    }
    assert rows[key("pspnet"), "onnxruntime-fp32"]["gate"] == "fail"  # the table is written
    assert "| fail |" in (workdir / "results" / "matrix.md").read_text()
    write_config(workdir, merged(MATRIX_CONFIG, {"matrix": {"gate": {"relative": 0.4}}}))
    assert planned_rules(workdir, "results/matrix.json") == {"matrix"}  # another gate: the table alone


def closing_results(output: str) -> list[str]:
    """The result files a run's closing summary names (``<path>: <headline>`` lines)."""
    return re.findall(r"^(results/(?:\S+/)?result\.json): ", output, flags=re.MULTILINE)


@pytest.mark.slow
def test_another_size_and_back_plans_nothing_and_nothing_of_another_config_is_shown(matrix_run, tmp_path):
    """The issue's flow: the matrix at another input size, then back. Each size keeps its own files
    (demo/val@32x64, deeplabv3@32x64); the closing summary names only the results of the run; the report
    refuses a part made for another config, naming the command that brings it up to date, and after the
    README's commands in order it holds only what this config made, each part stamped."""
    workdir = copy_run(matrix_run, tmp_path / "copy")
    small = merged(
        MATRIX_CONFIG,
        {
            "model": {"input_shape": [32, 64]},
            "matrix": {"models": [], "variants": ["pytorch-fp32", "onnxruntime-fp32"]},
        },
    )
    first = sorted((workdir / "results").rglob("*"))
    before = {path: path.stat().st_mtime_ns for path in first if path.is_file()}
    write_config(workdir, small)
    run = snakemake(workdir, "results/matrix.json")
    assert {"demo_dataset", "preprocess", "export_onnx", "infer", "evaluate"} <= rules_in(run.stdout)
    assert (workdir / "results" / "prep_dataset" / "demo" / "val@32x64").is_dir()
    # the views (matrix, its log) are this config's; every computed file, log and benchmark is keyed
    views = ("results/matrix.", "results/report/matrix.png", "results/logs/matrix.log")
    kept = {path: mtime for path, mtime in before.items() if not str(path.relative_to(workdir)).startswith(views)}
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # no file of the 64x128 run overwritten
    assert sorted(closing_results(run.stdout)) == [
        f"results/cells/demo/val@32x64/deeplabv3@32x64/{variant}/result.json"
        for variant in ("onnxruntime-fp32", "pytorch-fp32")
    ]  # not results/result.json, which is the 64x128 run's and this run neither made nor checked
    assert json.loads((workdir / "results" / "result.json").read_text())["model"] == key("deeplabv3")  # untouched

    # back to the first size: every model, frame file and cell is found again; only the views are redone
    write_config(workdir, MATRIX_CONFIG)
    assert planned_rules(workdir, "results/matrix.json") == {"matrix"}
    assert planned_rules(workdir) == set()  # results/result.json and its figures are still this config's
    cells = [
        str(cell_result(variant, key(model))) for model in ("deeplabv3", "pspnet") for variant in MATRIX["variants"]
    ]
    assert "Nothing to be done" in snakemake(workdir, "-n", *cells).stdout

    # results/matrix.json is the 32x64 one: --report refuses it, naming the command that remakes it
    report = workdir / "results" / "report.html"
    refused = snakemake(workdir, "--report", str(report), "all", "results/matrix.json", check=False)
    assert refused.returncode != 0 and not report.exists()
    assert (
        "error: results/matrix.json was made for another config (made for deeplabv3@32x64/pytorch-fp32"
        in refused.stdout
    )
    assert "run `snakemake --cores all results/matrix.json` first" in refused.stdout
    # the README's order: the run, then the report
    rerun = snakemake(workdir, "all", "results/matrix.json")
    assert rules_in(rerun.stdout) == {"matrix"}
    assert "results/result.json" in closing_results(rerun.stdout)
    snakemake(workdir, "--report", str(report), "all", "results/matrix.json")
    html = report.read_text()
    # every part stamped (5 of the cell, the matrix figure), none of the other size
    assert "@32x64" not in html and html.count(f"on {DEMO_DATA} at 64x128, config ") == 6


@pytest.mark.slow
def test_adding_a_variant_or_a_model_plans_only_its_jobs(matrix_run, tmp_path):
    workdir = copy_run(matrix_run, tmp_path / "run")
    more = merged(MATRIX_CONFIG, {"matrix": {"variants": [*MATRIX["variants"], "onnxruntime-int8"]}})
    write_config(workdir, more)
    try:
        outputs = planned_outputs(workdir, "results/matrix.json")
        added = [path for path in outputs if not path.startswith(("results/matrix.", "results/report/matrix"))]
        # the new cells and the int8 model each model quantizes for them (its own file per model)
        assert added and all("/onnxruntime-int8/" in path or "_int8." in path for path in added), added
        assert {path for path in added if "_int8." in path} == {
            f"results/models/{name}/{name}_sim_bs1_int8.{suffix}"
            for name in (key("deeplabv3"), key("pspnet"))
            for suffix in ("onnx", "json")
        }
        fcn = {"name": "fcn", "config": "fcn_r18-d8_4xb2-80k_cityscapes-512x1024"}
        write_config(workdir, merged(MATRIX_CONFIG, {"matrix": {"models": [PSPNET, fcn]}}))
        outputs = planned_outputs(workdir, "results/matrix.json")
        added = [path for path in outputs if not path.startswith(("results/matrix.", "results/report/matrix"))]
        fcn_files = (
            f"/{key('fcn')}/",
            f"/{key('fcn')}.",
            "/demo/checkpoints/fcn.pth",
        )  # its random checkpoint: by name
        assert added and all(any(part in path for part in fcn_files) for path in added), added
    finally:
        write_config(workdir, MATRIX_CONFIG)  # and back: nothing to do
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/matrix.json").stdout


@pytest.mark.slow
def test_any_cell_of_the_matrix_is_a_result_json_without_inference(matrix_run, tmp_path):
    workdir = copy_run(matrix_run, tmp_path / "copy")
    for backend in ("pytorch", "openvino", "onnxruntime"):
        write_config(workdir, merged(MATRIX_CONFIG, {"backend": backend}))
        assert planned_rules(workdir) <= {"result", "report_figures"}, backend
    # a matrix model as the configured one: its cells are found too
    write_config(workdir, merged(MATRIX_CONFIG, {"model": PSPNET, "matrix": {"models": []}, "backend": "openvino"}))
    assert rules_in(snakemake(workdir, "results/result.json").stdout) <= {"result", "report_figures"}
    result = json.loads((workdir / "results" / "result.json").read_text())
    assert (result["model"], result["variant"]) == (key("pspnet"), "openvino-fp32")
    assert result == json.loads((workdir / cell_result("openvino-fp32", key("pspnet"))).read_text())


@pytest.mark.slow
def test_bad_matrix_input_stops_at_start_naming_it_and_loses_nothing(matrix_run, tmp_path):
    from deeplabv3_pipeline.model.mmseg_model import make_random_checkpoint

    workdir = copy_run(matrix_run, tmp_path / "copy")
    before = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
    fcn = make_random_checkpoint("fcn_r18-d8_4xb2-80k_cityscapes-512x1024", tmp_path / "fcn.pth", seed=1)
    cases = [
        (
            {"matrix": {"models": [{**PSPNET, "checkpoint": str(fcn)}]}},
            f"error: model pspnet: checkpoint {fcn} does not fit the model config {PSPNET['config']}: ",
        ),
        (
            {"matrix": {"variants": ["onnxruntime-fp64"]}},
            "matrix.variants: unknown variant 'onnxruntime-fp64': choose from ",
        ),
        (
            {"matrix": {"models": [{**PSPNET, "name": "deeplabv3"}]}},
            "matrix.models[0]: a second model named 'deeplabv3'",
        ),
        (
            {"matrix": {"models": [{**PSPNET, "config": "pspnet_r50"}]}},
            "matrix.models[0].config: unknown mmseg config 'pspnet_r50'",
        ),
        ({"compare": {"backends": ["pytorch"]}}, "error: config key compare is gone: use matrix (variants, reference)"),
    ]
    for changes, message in cases:
        write_config(workdir, merged(MATRIX_CONFIG, changes))
        failed = snakemake(workdir, "-n", "results/matrix.json", check=False)
        assert failed.returncode != 0 and message in failed.stdout, failed.stdout[-3000:]
        if "does not fit" in message:  # the mismatched keys are named: PSPNet's pyramid is not FCN's
            assert re.search(r"\d+ missing \(e\.g\. decode_head\.bottleneck", failed.stdout), failed.stdout[-2000:]
    after = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
    assert after == before  # nothing computed is lost or touched
    # a checkpoint that fits is checked once, then found fitting by its fingerprint
    psp = make_random_checkpoint(PSPNET["config"], tmp_path / "psp.pth", seed=1)
    write_config(workdir, merged(MATRIX_CONFIG, {"matrix": {"models": [{**PSPNET, "checkpoint": str(psp)}]}}))
    assert "export_onnx" in planned_rules(workdir, "results/matrix.json")
    from deeplabv3_pipeline.evaluation.provenance import fingerprint

    fitted = json.loads((workdir / ".snakemake" / "deeplabv3" / "checkpoints_that_fit.json").read_text())
    assert fitted == [f"{fingerprint([str(psp)])} {PSPNET['config']}"]  # by size and mtime: a new file is checked


@pytest.mark.slow
def test_a_zoo_model_by_name_plans_the_zoos_checkpoint_and_gate(tmp_path):
    """`checkpoint: zoo` and `expect.miou: zoo` in a dry run (nothing is downloaded: no network here)."""
    guide = "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024"
    config = {"model": {"config": guide, "checkpoint": "zoo", "cache_dir": "cache"}, "expect": {"miou": "zoo"}}
    write_config(tmp_path, merged(TINY, config))
    planned = snakemake(tmp_path, "-n", "-p", "results/result.json").stdout
    url = "https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/deeplabv3_r50-d8_512x1024_40k_cityscapes/"
    assert f"fetch_checkpoint.py {url}" in planned and "acadc2f8.pth --output cache/" in planned
    assert "--expect-miou 79.09 --tolerance 0.3" in planned  # the published figure is the gate
    write_config(
        tmp_path,
        merged(TINY, {"model": {"config": "fcn_r50-d8_4xb2-40k_cityscapes-512x1024"}, "expect": {"miou": "zoo"}}),
    )
    assert "--expect-miou 72.25" in snakemake(tmp_path, "-n", "-p", "results/result.json").stdout


@pytest.mark.slow
def test_a_model_that_cannot_run_here_is_refused_at_start(tmp_path):
    """PSANet in the matrix: the dry run stops at start with the reason (its compiled PSAMask kernel)."""
    psanet = {"name": "psanet", "config": "psanet_r50-d8_4xb2-40k_cityscapes-512x1024", "checkpoint": ""}
    write_config(tmp_path, merged(TINY, {"matrix": {"models": [psanet]}}))
    failed = snakemake(tmp_path, "-n", "results/matrix.json", check=False)
    assert failed.returncode != 0
    assert "error: model psanet: model config psanet_r50-d8_4xb2-40k_cityscapes-512x1024 cannot run" in failed.stdout
    assert "it calls mmcv._ext.psamask_forward, a compiled kernel of mmcv-full" in failed.stdout
    assert not (tmp_path / "results").exists()


def test_zoo_support_plans_the_entries_that_run_and_names_why_the_others_cannot(tmp_path):
    """zoo.support: CGNet joins the matrix (its cells planned), PSANet gets no job and its reason goes to
    the support table's command; the table itself from a run: tests/unit/test_zoo_check.py."""
    config = scenario("zoo_support")
    cgnet, psanet = config["zoo"]["support"]
    assert cgnet.startswith("cgnet_") and psanet.startswith("psanet_")
    write_config(tmp_path, config)
    planned = snakemake(tmp_path, "-n", "-p", "results/zoo/support.md").stdout
    cgnet_key, psanet_key = key(f"zoo-{cgnet}"), key(f"zoo-{psanet}")
    assert f"--entry {cgnet_key} {cgnet} cgnet --entry {psanet_key} {psanet} psanet" in planned
    assert f"--refused {psanet_key} 'it calls mmcv._ext.psamask_forward, a compiled kernel of mmcv-full" in planned
    # the ATC command of CGNet's .om, planned (not run) for the support table's column
    model = f"results/models/{cgnet_key}"
    assert (
        f"--atc {cgnet_key} Ascend310P3 'atc --framework=5 --model={model}/{cgnet_key}_sim_bs1.onnx"
        f" --output={model}/fp16/{cgnet_key}_bs1_Ascend310P3 --input_format=NCHW --input_shape=input:1,3,64,128"
        in planned
    )
    assert f"--atc {psanet_key}" not in planned and "--opset 11" in planned
    ran = re.findall(r"^rule (\w+):", planned, flags=re.MULTILINE)
    assert "infer_zoo_cgnet_fcn_4xb4_60k_cityscapes_680x680_onnxruntime_fp32" in ran and "zoo_support" in ran
    assert not [rule for rule in ran if "psanet" in rule]


@pytest.mark.slow
def test_the_support_table_of_a_zoo_entry_run_end_to_end(tiny_run, tmp_path):
    """A model-zoo entry by its name, run for real at 64x128: CGNet's random checkpoint, export, verify,
    simplify and cells, then results/zoo/support.md with its agreement and ATC column."""
    cgnet = "cgnet_fcn_4xb4-60k_cityscapes-680x680"
    workdir = copy_run(tiny_run, tmp_path / "run")
    variants = ["pytorch-fp32", "onnxruntime-fp32"]
    write_config(workdir, merged(TINY, {"zoo": {"support": [cgnet]}, "matrix": {"variants": variants}}))
    snakemake(workdir, "results/zoo/support.md")
    table = (workdir / "results" / "zoo" / "support.md").read_text().splitlines()
    header = "| family | entry (model.config) | runs here | onnxruntime-fp32 agreement | ATC Ascend310P3 fp16 |"
    assert table[0] == header
    row = re.fullmatch(rf"\| cgnet \| {cgnet} \| yes \| (\S+) \| planned \|", table[2])
    assert row and float(row.group(1)) >= 0.999  # the same model in two runtimes, fp32
    (entry,) = json.loads((workdir / "results" / "zoo" / "support.json").read_text())["entries"]
    assert entry["pixel_agreement"]["onnxruntime-fp32"] >= 0.999 and "Ascend310P3" in entry["atc_commands"]
    assert (workdir / "results" / "models" / key(f"zoo-{cgnet}") / f"{key(f'zoo-{cgnet}')}_verify.json").is_file()
