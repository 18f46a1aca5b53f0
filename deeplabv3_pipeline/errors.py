"""One exception type for problems a user can fix, and the CLI wrapper that reports them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """Bad input or a missing tool: the message names the file and the fix."""


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a stage's ``main`` and turn a :class:`UserError` into one clear line and exit code 2.

    A traceback is for bugs; a user who pointed at the wrong folder gets a sentence.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
