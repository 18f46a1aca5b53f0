"""What a result was computed from, and whether that still holds.

Snakemake reruns a job when an input is *newer* than its output, or when its params change. Two
cases escape that, and this module closes them:

- A source file (a dataset image or label, a local checkpoint) replaced by another that carries an
  older mtime, as unzip and rsync leave it. :func:`fingerprint` of the files, a rule's param, changes
  with any file's size or mtime, either way, so the job runs again.
- A file the workflow made that is missing or changed while the result computed from it is kept:
  Snakemake does not remake an intermediate whose downstream outputs exist, and reports "Nothing to be
  done". A result records the size of every file it read (:func:`file_sizes`); :func:`stale_files`
  compares that record with the disk, and the workflow names the file and the command that
  recomputes it.

And :func:`code_version`: which code computed a result (result.json records it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # deeplabv3_pipeline/
REPO_ROOT = PACKAGE_ROOT.parent
# The code a result depends on: the package, the stage CLIs, the rules and the schema.
CODE_GLOBS = ("deeplabv3_pipeline/**/*.py", "scripts/*.py", "Snakefile", "rules/*.smk", "schemas/*.yaml")


def fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """A short hash of each file's path, size and mtime (nanoseconds): another file under the same
    name changes it whether its mtime is older or newer. One ``stat`` per file, no reading."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            status = os.stat(path)
            facts = f"{status.st_size} {status.st_mtime_ns}"
        except FileNotFoundError:
            facts = "missing"
        digest.update(f"{os.fspath(path)}\0{facts}\n".encode())
    return digest.hexdigest()[:16]


def file_sizes(paths: Iterable[str | os.PathLike[str] | None]) -> dict[str, int]:
    """``{path: size in bytes}`` of the files a result was computed from (None entries skipped)."""
    return {os.fspath(path): os.stat(path).st_size for path in paths if path is not None}


def stale_files(recorded: Mapping[str, int], may_be_missing: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(path, what is wrong)`` for each recorded file that is missing or has another size now.

    ``may_be_missing``: files the workflow deletes on purpose once used (``storage.keep_*: false``);
    they may be absent, but one that is present must still be the one recorded."""
    allowed = set(may_be_missing)
    stale = []
    for path, size in recorded.items():
        try:
            now = os.stat(path).st_size
        except FileNotFoundError:
            if path not in allowed:
                stale.append((path, "is missing"))
            continue
        if now != size:
            stale.append((path, f"has {now:,} bytes, but {size:,} when the result was computed"))
    return stale


def code_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted({path for pattern in CODE_GLOBS for path in root.glob(pattern) if path.is_file()})


def code_version(root: Path = REPO_ROOT) -> dict[str, object]:
    """The code that runs: the package version, a sha256 over the package, scripts, rules and schema
    (path and content of each file), and the git commit with a dirty flag where ``root`` is a git
    checkout (None elsewhere, e.g. an installed copy)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    files = code_files(root)
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    try:
        package_version = version("deeplabv3-pipeline")
    except PackageNotFoundError:
        package_version = None
    return {
        "package_version": package_version,
        "files_sha256": digest.hexdigest(),
        "files": len(files),
        **git_state(root),
    }


def git_state(root: Path) -> dict[str, object]:
    """``git_commit`` and ``git_dirty`` (uncommitted changes to tracked files) of ``root``, or None."""
    if not (root / ".git").exists():
        return {"git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}


def kept_result_problem(
    result_path: str,
    inputs: Iterable[str],
    run_config: Mapping,
    *,
    may_be_missing: Iterable[str] = (),
    sources: Iterable[str] = (),
) -> str | None:
    """Why the kept result at ``result_path`` no longer describes the files it was computed from although
    Snakemake would keep it, or None.

    Left to Snakemake, which reruns the evaluation by itself: another set of ``inputs`` (predictions and
    labels), another recorded ``run_config``, or a recorded file newer than the result (its inputs are
    then remade where missing). What remains is a file the workflow made (under results/, not one of
    ``sources``, the user's own files, which their fingerprints cover) that is missing, or has another
    size with an older mtime: the message names it and the command. ``may_be_missing``: files the
    workflow deletes once used (``storage.keep_predictions: false``); and where *every* listed
    prediction is gone (a run with that setting, or a deliberate clean-up), the result stays valid and
    what needs them makes them again, so that is no error either.
    """
    from deeplabv3_pipeline.errors import recompute_hint

    inputs = list(inputs)
    try:
        result_mtime = os.stat(result_path).st_mtime_ns
        text = Path(result_path).read_text()
    except FileNotFoundError:
        return None
    try:
        result = json.loads(text)
    except ValueError:
        if any(_newer(path, result_mtime) for path in inputs):
            return None
        return f"{result_path} is damaged (not JSON): {recompute_hint(result_path, target=result_path)}"
    recorded = result.get("files")
    if not isinstance(recorded, dict):  # a result made before sizes were recorded: nothing to compare
        return None
    predictions = set(result.get("predictions", {}).values())
    used = predictions | set(result.get("labels", {}).values())
    if used != set(inputs) or result.get("config") != run_config:
        return None
    own = set(sources)
    made = {path: size for path, size in recorded.items() if Path(path).parts[:1] == ("results",) and path not in own}
    if any(_newer(path, result_mtime) for path in made):
        return None
    stale = stale_files(made, may_be_missing)
    missing_predictions = {path for path, why in stale if why == "is missing" and path in predictions}
    if predictions and missing_predictions == predictions:
        stale = [(path, why) for path, why in stale if path not in predictions]
    if not stale:
        return None
    path, why = stale[0]
    more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
    return f"{result_path} was computed from {path}, which {why}{more}: " + recompute_hint(
        *(stale_path for stale_path, _ in stale), target=result_path
    )


def _newer(path: str, than_ns: int) -> bool:
    try:
        return os.stat(path).st_mtime_ns > than_ns
    except FileNotFoundError:
        return False


def cached_check(cache: Path, key: str, check: Callable[[], None]) -> None:
    """Run ``check`` (it raises when what it checks is wrong) unless ``key`` passed it before, as
    ``cache`` (a JSON list of keys) records; record ``key`` when it passes. For checks too slow for
    every parse (loading a checkpoint): put what they depend on in the key (a fingerprint)."""
    passed = json.loads(cache.read_text()) if cache.is_file() else []
    if key in passed:
        return
    check()
    from deeplabv3_pipeline.io.binio import write_json

    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json(cache, [*passed, key][-100:])  # the newest 100: old keys drop out


def cached_value(cache: Path, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s value (JSON) as ``cache`` (a JSON object) keeps it under ``key``, computed and kept
    when it has none; ``compute`` raising keeps nothing. As for :func:`cached_check`, put what the value
    depends on in the key. A cache file that is not such an object (an older format) counts as empty."""
    kept = json.loads(cache.read_text()) if cache.is_file() else {}
    kept = kept if isinstance(kept, dict) else {}
    if key in kept:
        return kept[key]
    value = compute()
    from deeplabv3_pipeline.io.binio import write_json

    cache.parent.mkdir(parents=True, exist_ok=True)
    # the newest 1000: old keys drop out (zoo.support: all is 269 models, each checked by every parse)
    write_json(cache, dict(list({**kept, key: value}.items())[-1000:]))
    return value


# The packages a model's build and graph depend on (the key of model_checks.check_models_run)
MODEL_PACKAGES = ("torch", "mmsegmentation", "mmengine", "mmcv", "mmcv-lite")


def environment_versions(packages: tuple[str, ...] = MODEL_PACKAGES) -> str:
    """``name=version`` of each installed package among ``packages`` (from their metadata: no import)."""
    from importlib import metadata

    versions = []
    for name in packages:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return " ".join(versions)


def user_cache_dir() -> Path:
    """This project's folder in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deeplabv3_pipeline"
