"""A progress bar on stderr (images done / total, rate, ETA), readable in a log file too."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    # In a log file (not a terminal) redraws would pile up: print a line every 10%.
    interval = 0.5 if sys.stderr.isatty() else None
    return iter(
        tqdm(
            items,
            total=total,
            desc=label,
            unit="img",
            file=sys.stderr,
            mininterval=interval or 0.0,
            miniters=None if interval else max(1, total // 10),
            dynamic_ncols=True,
        )
    )
