"""One exception type for problems a user can fix, and the CLI wrapper that reports them."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Sequence

LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"  # a stage CLI's log lines (on stderr)


class UserError(Exception):
    """Bad input or a missing tool: the message names the file and the fix."""


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a stage's ``main`` and turn a :class:`UserError` into one clear line and exit code 2.

    A traceback is for bugs; a user who pointed at the wrong folder gets a sentence.
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    try:
        return main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def recompute_hint(*paths: object, target: str | None = None) -> str:
    """The advice for damaged or missing files the workflow makes: the command that recomputes them and
    everything that depends on them (``--forcerun`` of a file forces the job that writes it; deleting the
    file alone would not, since Snakemake does not remake an intermediate whose results are present).
    ``target``: the file to rebuild, where it is not part of the default target."""
    words = ["snakemake", "--cores", "all", "--forcerun", *map(str, paths)]
    if target:
        words += ["--", target]
    them = "it" if len(paths) == 1 else "them"
    scope = "what depends on" if target else "what the default target builds from"
    other = "" if target else "; for another target, add `-- TARGET`"
    return (
        f"recompute {them} and {scope} {them} with `{shlex.join(words)}` "
        f"(add this run's --configfile/--config, if any{other}; by hand: rerun the stage CLI that writes it)"
    )


def check_no_wildcard_braces(path: object, what: str) -> None:
    """Snakemake reads ``{`` and ``}`` in a file name as a wildcard, so such a path cannot be a job's file:
    refuse it at start, naming it (every other character, spaces, quotes and ``$(...)`` included, is data)."""
    text = str(path)
    if "{" in text or "}" in text:
        raise UserError(
            f"{what} {text} holds '{{' or '}}', which Snakemake reads as a wildcard in file names: "
            "rename it, or link it under a name without braces"
        )
