#!/usr/bin/env python3
"""The mmseg model zoo's Cityscapes entries, from the metafiles mmsegmentation ships.

    python scripts/zoo.py list [--family pspnet] [--output zoo.md]

Prints (or writes) a Markdown table: the entry's name (its config name: what `model.config` and
`matrix.models[].config` take), its family, the mIoU mmseg publishes, and the checkpoint URL that
`checkpoint: zoo` fetches (sha256 prefix in its name, checked after the download).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_text
from deeplabv3_pipeline.model.zoo import cityscapes_entries
from deeplabv3_pipeline.report.tables import markdown_table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the Cityscapes entries as a Markdown table")
    listing.add_argument("--family", help="only this family (the configs/<family>/ folder, e.g. pspnet)")
    listing.add_argument("--output", type=Path, help="write the table here instead of printing it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    entries = [entry for entry in cityscapes_entries() if args.family in (None, Path(entry.config).parent.name)]
    if not entries:
        raise UserError(f"no Cityscapes entry in family {args.family!r}: `python scripts/zoo.py list` lists them")
    rows = [
        [entry.name, Path(entry.config).parent.name, "-" if entry.miou is None else f"{entry.miou:.2f}", entry.weights]
        for entry in entries
    ]
    table = "\n".join(markdown_table(["name (model.config)", "family", "published mIoU", "checkpoint"], rows)) + "\n"
    if args.output:
        write_text(args.output, table)
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
