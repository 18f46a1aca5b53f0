#!/usr/bin/env python3
"""The mmseg model zoo's Cityscapes entries, from the metafiles mmsegmentation ships.

    python scripts/zoo.py list [--family pspnet] [--output zoo.md]
    python scripts/zoo.py check [--family pspnet | --all] [--opset 11] [--output support.md]
    python scripts/zoo.py support --matrix results/matrix.json --entry MODEL ENTRY FAMILY ... \
        [--refused MODEL REASON ...] [--atc MODEL SOC COMMAND ...] [--opset 11] --output results/zoo/support

Prints (or writes) a Markdown table: the entry's name (its config name: what `model.config` and
`matrix.models[].config` take), its family, the mIoU mmseg publishes, and the checkpoint URL that
`checkpoint: zoo` fetches (sha256 prefix in its name, checked after the download).

``check`` runs the workflow's start check (deeplabv3_pipeline/model/zoo_check.py) on one entry per family
(or every entry of ``--family``, or ``--all`` 269): whether it builds, runs and exports to ONNX here, or why
not. Seconds per entry; the first check of a large model takes longer.

``support`` is the workflow's rule zoo_support (``zoo.support`` in the config): the support table of the
entries the matrix ran, each variant's pixel agreement with the reference, the reason for each entry
that got no jobs, and the ATC command planned per soc_version (``--atc``: planned, not run); ``<output>.md``
and ``<output>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json, write_text
from deeplabv3_pipeline.model.zoo import cityscapes_entries, family_of, one_per_family
from deeplabv3_pipeline.model.zoo_check import check_entry, check_rows, support_table
from deeplabv3_pipeline.report.figures import load_json
from deeplabv3_pipeline.report.tables import markdown_table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the Cityscapes entries as a Markdown table")
    listing.add_argument("--family", help="only this family (the configs/<family>/ folder, e.g. pspnet)")
    listing.add_argument("--output", type=Path, help="write the table here instead of printing it")
    checking = commands.add_parser("check", help="the start check per entry: runs and exports here, or why not")
    chosen = checking.add_mutually_exclusive_group()
    chosen.add_argument("--family", help="every entry of this family (default: one entry per family)")
    chosen.add_argument("--all", action="store_true", help="every Cityscapes entry (269)")
    checking.add_argument("--opset", type=int, default=11, help="ONNX opset of the export (model.opset; default 11)")
    checking.add_argument("--output", type=Path, help="write the table here instead of printing it")
    support = commands.add_parser("support", help="the support table of zoo.support's entries (rule zoo_support)")
    support.add_argument("--matrix", type=Path, required=True, help="results/matrix.json of the run")
    support.add_argument("--entry", nargs=3, action="append", default=[], metavar=("MODEL", "ENTRY", "FAMILY"))
    support.add_argument("--refused", nargs=2, action="append", default=[], metavar=("MODEL", "REASON"))
    support.add_argument(
        "--atc",
        nargs=3,
        action="append",
        default=[],
        metavar=("MODEL", "SOC", "COMMAND"),
        help="the ATC command planned for MODEL's .om on SOC (one shell line)",
    )
    support.add_argument("--opset", type=int, default=11, help="the run's model.opset")
    support.add_argument("--output", type=Path, required=True, help="writes <output>.md and <output>.json")
    return parser.parse_args(argv)


def write_support(args: argparse.Namespace) -> int:
    if not args.entry:
        raise UserError(
            "zoo.support names no entry: set it to families, all or a list of entry names, e.g. "
            "snakemake --cores 2 results/zoo/support.md --config 'zoo={support: families}'"
        )
    matrix = load_json(args.matrix, "matrix file")
    atc: dict[str, dict[str, str]] = {}
    for model, soc, command in args.atc:
        atc.setdefault(model, {})[soc] = command
    entries = [tuple(entry) for entry in args.entry]
    header, rows, records = support_table(matrix, entries, dict(args.refused), atc, args.opset)
    write_text(args.output.with_suffix(".md"), "\n".join(markdown_table(header, rows)) + "\n")
    write_json(args.output.with_suffix(".json"), {"reference": matrix["reference"], "entries": records})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "support":
        return write_support(args)
    entries = [entry for entry in cityscapes_entries() if args.family in (None, family_of(entry))]
    if not entries:
        raise UserError(f"no Cityscapes entry in family {args.family!r}: `python scripts/zoo.py list` lists them")
    if args.command == "check":
        chosen = entries if args.all or args.family else one_per_family(entries)
        header, rows = check_rows([check_entry(entry, args.opset) for entry in chosen], args.opset)
    else:
        header = ["name (model.config)", "family", "published mIoU", "checkpoint"]
        rows = [
            [entry.name, family_of(entry), "-" if entry.miou is None else f"{entry.miou:.2f}", entry.weights]
            for entry in entries
        ]
    table = "\n".join(markdown_table(header, rows)) + "\n"
    if args.output:
        write_text(args.output, table)
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
