"""The start check over the model zoo (deeplabv3_pipeline/model/zoo_check.py, scripts/zoo.py check)."""

from __future__ import annotations

from deeplabv3_pipeline.model.zoo import cityscapes_entries, family_of, one_per_family
from deeplabv3_pipeline.model.zoo_check import check_entry, support_table

from ..conftest import run_script


def entry_of(family: str):
    return next(entry for entry in one_per_family(cityscapes_entries()) if family_of(entry) == family)


def test_one_entry_per_family_the_first_the_metafile_lists():
    entries = cityscapes_entries()
    chosen = one_per_family(entries)
    families = [family_of(entry) for entry in chosen]
    assert len(families) == len(set(families)) == len({family_of(entry) for entry in entries}) >= 30
    assert entry_of("deeplabv3").name == "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024"
    assert all(entry == next(e for e in entries if family_of(e) == family_of(entry)) for entry in chosen)


def test_each_entry_gets_yes_or_the_reason():
    cgnet = check_entry(entry_of("cgnet"), opset=11)
    assert cgnet.problem is None and cgnet.test_mode == "whole"
    psanet = check_entry(entry_of("psanet"), opset=11)
    assert psanet.problem.startswith("it calls mmcv._ext.psamask_forward, a compiled kernel of mmcv-full")
    emanet = check_entry(entry_of("emanet"), opset=11)  # its metafile names a config mmseg does not ship
    assert emanet.problem.startswith("its config is not in mmsegmentation (unknown mmseg config 'eemanet_")


def test_the_check_cli_prints_the_table():
    table = run_script("zoo.py", "check", "--family", "psanet").stdout
    assert table.startswith("| family | entry (model.config) | test mode | runs and exports here (opset 11) |")
    assert (
        "| psanet | psanet_r50-d8_4xb2-40k_cityscapes-512x1024 | whole | no: it calls mmcv._ext.psamask_forward"
        in table
    )


MATRIX = {
    "reference": "pytorch-fp32",
    "rows": [
        {"model": "zoo-cgnet", "variant": "pytorch-fp32", "pixel_agreement": 1.0},
        {"model": "zoo-cgnet", "variant": "onnxruntime-fp32", "pixel_agreement": 0.99995},
        {"model": "zoo-cgnet", "variant": "onnxruntime-int8", "pixel_agreement": 0.9312},
        {"model": "deeplabv3", "variant": "onnxruntime-fp32", "pixel_agreement": 0.5},  # not an entry of the table
    ],
}
ENTRIES = [("zoo-cgnet", "cgnet_fcn_4xb4-60k_cityscapes-680x680", "cgnet"), ("zoo-psanet", "psanet_r50", "psanet")]


ATC = {
    "zoo-cgnet": {"Ascend310P3": "atc --framework=5 --model=results/models/zoo-cgnet/zoo-cgnet_sim_bs1.onnx ..."},
    "zoo-psanet": {"Ascend310P3": "atc ..."},  # refused: no command in its row
}


def test_the_support_table_is_the_matrixs_agreement_per_entry_and_the_reason_for_the_others():
    header, rows, records = support_table(MATRIX, ENTRIES, {"zoo-psanet": "it calls mmcv._ext.psamask_forward"}, ATC)
    assert header == ["family", "entry (model.config)", "runs here", "onnxruntime-fp32 agreement",
                      "onnxruntime-int8 agreement", "ATC Ascend310P3 fp16"]  # fmt: skip
    assert rows == [
        ["cgnet", "cgnet_fcn_4xb4-60k_cityscapes-680x680", "yes", "1.0000", "0.9312", "planned"],
        ["psanet", "psanet_r50", "no: it calls mmcv._ext.psamask_forward", "-", "-", "-"],
    ]
    assert records[0]["pixel_agreement"] == {"onnxruntime-fp32": 0.99995, "onnxruntime-int8": 0.9312}
    assert records[0]["atc_commands"] == ATC["zoo-cgnet"]
    assert records[1]["runs"] is False and records[1]["reason"] == "it calls mmcv._ext.psamask_forward"
    assert records[1]["atc_commands"] == {}
    # a model exported above the guide's opset: the column says so
    _, rows, _ = support_table(MATRIX, ENTRIES[:1], {}, ATC, opset=13)
    assert rows[0][-1] == "planned at opset 13 (the guide's ATC takes 11)"


def test_the_support_cli_writes_markdown_and_json_and_names_the_missing_setting(tmp_path):
    import json

    matrix = tmp_path / "matrix.json"
    matrix.write_text(json.dumps(MATRIX))
    entries = [arg for entry in ENTRIES for arg in ("--entry", *entry)]
    atc = ["--atc", "zoo-cgnet", "Ascend310P3", ATC["zoo-cgnet"]["Ascend310P3"]]
    run_script("zoo.py", "support", "--matrix", matrix, *entries, "--refused", "zoo-psanet", "why", *atc,
               "--output", tmp_path / "support")  # fmt: skip
    assert "| psanet | psanet_r50 | no: why | - | - | - |" in (tmp_path / "support.md").read_text()
    written = json.loads((tmp_path / "support.json").read_text())["entries"][0]
    assert written["runs"] is True and written["atc_commands"] == ATC["zoo-cgnet"]
    refused = run_script("zoo.py", "support", "--matrix", matrix, "--output", tmp_path / "none", check=False)
    assert refused.returncode == 2 and "error: zoo.support names no entry: set it to families" in refused.stderr
