"""The start check over the model zoo (deeplabv3_pipeline/model/zoo_check.py, scripts/zoo.py check)."""

from __future__ import annotations

from deeplabv3_pipeline.model.zoo import cityscapes_entries
from deeplabv3_pipeline.model.zoo_check import check_entry, family_of, one_per_family

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
