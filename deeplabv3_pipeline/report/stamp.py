"""What a figure, table or published result was computed for: its **stamp** (the cells, the data, the input
size and a digest of the config each cell recorded).

Every figure and table the report shows carries its stamp (drawn on the PNGs, written in the tables and in
``stamp.json`` beside them, in ``matrix.json``). ``snakemake --report`` reads the stamp of each part it
packs and refuses a part made for another config than the one it was asked with, naming the command that
brings it up to date: Snakemake's ``--report`` packs the files it finds without checking that they are
current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.planning.keys import data_tag, shape_text

STAMP_FILE = "stamp.json"  # beside a cell's report figures


def config_digest(run_config: Mapping[str, Any]) -> str:
    """12 hex digits of the sha256 of a cell's recorded config (``result.json``'s ``config``)."""
    return hashlib.sha256(json.dumps(run_config, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Stamp:
    cells: tuple[str, ...]  # model/variant of each cell it shows
    data: str  # <dataset>/<split>[@size]: the per-frame files' key
    input_size: str  # HxW of the images
    config: str  # config_digest of the cell's config; of the cells' digests where it shows several

    def subject(self) -> str:
        """What it was made for: ``<cells> on <data> at <size>, config <digest>`` (the report's label)."""
        cells = ", ".join(self.cells) if len(self.cells) <= 3 else f"{len(self.cells)} cells ({self.cells[0]}, ...)"
        return f"{cells} on {self.data} at {self.input_size}, config {self.config}"

    def text(self) -> str:
        return f"made for {self.subject()}"

    def sentence(self) -> str:
        """``text`` as a sentence of its own: ``Made for ... .``"""
        return f"Made for {self.subject()}."

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cells": list(self.cells)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stamp:
        return cls(tuple(data["cells"]), str(data["data"]), str(data["input_size"]), str(data["config"]))


def result_stamp(result: Mapping[str, Any]) -> Stamp | None:
    """The stamp of one cell's ``result.json``, from what it records (cell, dataset, config); None for one
    that records no workflow config (scripts/evaluate.py run by hand)."""
    config, dataset = result.get("config"), result.get("dataset")
    if not config or not dataset or not (config.get("model") or {}).get("input_shape"):
        return None
    model = config["model"]
    return Stamp(
        cells=(f"{result['model']}/{result['variant']}",),
        data=f"{dataset['id']}/{dataset['split']}{data_tag(model)}",
        input_size=shape_text(model["input_shape"]),
        config=config_digest(config),
    )


def combined(stamps: Iterable[Stamp]) -> Stamp:
    """One stamp for a table of several cells (the matrix): every cell, and a digest of their digests."""
    stamps = list(stamps)
    return Stamp(
        cells=tuple(cell for stamp in stamps for cell in stamp.cells),
        data=", ".join(dict.fromkeys(stamp.data for stamp in stamps)),
        input_size=", ".join(dict.fromkeys(stamp.input_size for stamp in stamps)),
        config=config_digest({"cells": [stamp.config for stamp in stamps]}),
    )


def read_stamp(path: Path) -> Stamp | None:
    """The stamp a file records: ``stamp.json`` itself, or the ``stamp`` of a ``matrix.json``; None where the
    file is missing or has none (made by an earlier version)."""
    try:
        data = json.loads(Path(path).read_text())
        return Stamp.from_json(data.get("stamp", data))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def stamp_problem(path: Path, expected: Stamp, command: str) -> str | None:
    """Why the part recorded in ``path`` may not be shown as this config's (None when it may): missing,
    or made for another config; the message names ``command``, which brings it up to date."""
    found = read_stamp(path)
    if found == expected:
        return None
    if not Path(path).is_file():
        made = "is missing"
    elif found:
        made = f"was made for another config ({found.text()})"
    else:
        made = "records no stamp (an earlier version made it)"
    return (
        f"{path} {made}; this config's part is {expected.text()}: run `{command}` first, then the --report "
        "command again (the report shows only what this config made)"
    )
