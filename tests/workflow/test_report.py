"""The report rules in a run: the default target makes the figures and tables, the runtimes cover every
benchmark file, and `snakemake --report` holds the table, the figures and their captions."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES

from ..conftest import made_once
from ..helpers import (
    DEMO_DATA,
    FIGURE_FILES,
    TINY,
    TINY_KEY,
    assert_readable_figure,
    copy_run,
    html_tables,
    merged,
    report_dir,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow
CELL_REPORT = report_dir("pytorch-fp32")  # the configured cell's figures
MATRIX_FIGURE = "results/report/matrix.png"


def report_variable(html: str, name: str) -> dict:
    """A ``var <name> = {...};`` object of a Snakemake HTML report (``results``: path -> caption, data_uri...)."""
    start = html.index(f"var {name} = {{") + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def data_of(entry: dict) -> bytes:
    return base64.b64decode(entry["data_uri"].split("base64,", 1)[1])


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> Path:
    """The demo with the PyTorch backend (no ONNX export: the quickest run), its report and a matrix
    (read-only: tests copy it)."""

    def make(workdir: Path) -> None:
        write_config(workdir, merged(TINY, {"backend": "pytorch", "matrix": {"variants": []}}))
        snakemake(workdir, "all", "results/report/matrix.png")

    return made_once(tmp_path_factory, "report_run", make)


@pytest.mark.slow
def test_default_run_makes_the_report_and_nothing_is_left_to_do(report_run, tmp_path):
    for path in [*(report_run / CELL_REPORT / name for name in FIGURE_FILES), MATRIX_FIGURE]:
        assert_readable_figure(report_run / path)
    assert (
        report_run / "results" / "logs" / "report_figures" / f"{CELL_REPORT.relative_to('results/report')}.log"
    ).is_file()
    assert "Nothing to be done" in snakemake(copy_run(report_run, tmp_path / "copy"), "-n").stdout


@pytest.mark.slow
def test_runtimes_cover_every_benchmark_file_of_the_run(report_run):
    """rules/*.smk's benchmark paths and the report's list of them (common.smk) agree."""
    benchmarks = report_run / "results" / "benchmarks"
    on_disk = {str(p.relative_to(benchmarks).with_suffix("")) for p in benchmarks.rglob("*.tsv")}
    markdown = (report_run / CELL_REPORT / "summary.md").read_text()
    runtime = markdown.split("## Runtime", 1)[1]
    shown = set(re.findall(r"^\| ([a-z_/0-9.@-]+) \| [0-9.]+ \|", runtime, flags=re.MULTILINE))
    assert shown == on_disk - {f"report_figures/{CELL_REPORT.relative_to('results/report')}"}
    cell = f"{DEMO_DATA}/{TINY_KEY}/pytorch-fp32"
    assert {"demo_checkpoint/deeplabv3", f"infer/{cell}/shard0", f"evaluate/{cell}"} <= shown


@pytest.mark.slow
def test_html_report_holds_the_table_figures_and_captions(report_run, tmp_path):
    workdir = copy_run(report_run, tmp_path / "copy")
    snakemake(workdir, "--report", "results/report.html", "all", "results/matrix.json")
    html = (workdir / "results" / "report.html").read_text()
    results = report_variable(html, "results")
    names = {f"{CELL_REPORT}/{name}" for name in (*FIGURE_FILES, "summary.html")} | {MATRIX_FIGURE}
    assert set(results) == names
    for path, entry in results.items():
        assert entry["caption"].strip(), f"{path} has no caption"
        assert data_of(entry) == (report_run / path).read_bytes(), path
        # every part stamped with what it was made for: cell(s), data, input size, config digest
        made_for = entry["labels"]["made for"]
        assert f"on {DEMO_DATA} at 64x128, config " in made_for, (path, made_for)
        assert f"{TINY_KEY}/pytorch-fp32" in made_for, (path, made_for)
    assert set(report_variable(html, "categories")) == {"Accuracy", "Examples", "Runtime", "Matrix"}
    tables = html_tables(data_of(results[f"{CELL_REPORT}/summary.html"]).decode())
    assert tables[0][2][0] == "mIoU" and [row[1] for row in tables[1][1:]] == list(CLASS_NAMES)
    assert "SYNTHETIC run" in html  # the workflow description (report/workflow.rst)
