#!/usr/bin/env python3
"""What planning costs: a dry run of results/result.json over N frames, the input checks in it, and a
dry run of a matrix.

    python scripts/bench_planning.py --frames 500 3000 --matrix-frames 500

For each N it lays out a Cityscapes-shaped tree of N frames (empty placeholder PNGs: planning never
reads an image), then times (median of ``--repeats``):
- ``fingerprint``: provenance.fingerprint over the N images (one stat each; a param of preprocess,
  so a replaced image is preprocessed again whatever its mtime), and over the N labels;
- ``kept result check``: provenance.kept_result_problem over a result listing N predictions and N
  labels (the check that stops "Nothing to be done" while a listed file is missing);
- ``dry run``: ``snakemake -n results/result.json`` on that tree, whole (parsing, frames, DAG);
- ``Snakemake alone``: a dry run of a Snakefile of a few lines (FLOOR) that declares the same files per
  frame as that plan (preprocess, labels and inference in and out, evaluation and figures in; 250
  frames a shard, the producers found by one set lookup as the workflow's are) and does nothing else:
  Snakemake's own cost of those files, which no workflow declaring them can go below.
Prints a Markdown table; the check's share of the dry run is the figure that matters. Then, for each
``--matrix-frames`` N, a dry run of ``results/matrix.json`` over N frames in 8 shards with 4 models x 6
variants (MATRIX), beside the dry run of one cell on the same tree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deeplabv3_pipeline.benchmark.planning import measure, measure_matrix
from deeplabv3_pipeline.report.tables import markdown_table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[500, 3000])
    parser.add_argument("--matrix-frames", type=int, nargs="*", default=[500])
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [measure(count, args.repeats) for count in args.frames]
    header = [
        "frames",
        "fingerprint ms (images + labels)",
        "kept result check ms",
        "dry run s",
        "checks' share",
        "Snakemake alone s (the same files)",
    ]
    print("\n".join(markdown_table(header, rows)))
    if args.matrix_frames:
        rows = [measure_matrix(count, args.repeats) for count in args.matrix_frames]
        header = ["frames", "shards", "dry run of one cell s", "matrix cells", "dry run of the matrix s"]
        print()
        print("\n".join(markdown_table(header, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
