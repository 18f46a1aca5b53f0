"""mmsegmentation's configs and model zoo, read from the files the wheel ships (no torch, no mmseg import).

- :func:`resolve_config`: a config file from a path or an mmseg config name (1.x, or the guide's 0.x name);
- :func:`zoo_entries`: the model zoo's entries (``mmseg/.mim/configs/*/metafile.yaml``): name, config,
  checkpoint URL and the published mIoU on each dataset;
- :func:`published_miou`: the Cityscapes mIoU that mmseg publishes for a config, where it is a zoo entry.

Kept light on purpose: the workflow resolves every model's config when it plans, on every parse.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from deeplabv3_pipeline.errors import UserError

DEFAULT_CONFIG = "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024"
# mmseg 0.x config names (the guide's) -> the 1.x names mmsegmentation 1.2.2 ships.
LEGACY_CONFIG_NAMES = {
    "deeplabv3_r50-d8_512x1024_40k_cityscapes": "deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024",
    "deeplabv3_r50-d8_512x1024_80k_cityscapes": "deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024",
}
# `checkpoint: zoo` and `expect.miou: zoo` name the model zoo's own checkpoint and published mIoU
ZOO = "zoo"
WHERE_CONFIGS_COME_FROM = (
    "model configs are a .py file, or the name of a config that mmsegmentation 1.2.2 ships "
    "(mmseg/.mim/configs/<family>/<name>.py)"
)


def mmseg_config_dir() -> Path:
    """The configs folder that the mmsegmentation wheel ships (``mmseg/.mim/configs``)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or spec.origin is None:
        raise UserError("mmsegmentation is not installed: run `make setup` (pip install -r requirements.txt)")
    return Path(spec.origin).parent / ".mim" / "configs"


@cache
def shipped_configs() -> dict[str, Path]:
    """Config name -> file, for every config mmseg ships (not the ``_base_`` fragments)."""
    root = mmseg_config_dir()
    return {
        path.stem: path
        for path in sorted(root.rglob("*.py"))
        if not any(part.startswith("_") for part in path.relative_to(root).parts[:-1])
    }


def config_name(name_or_path: str | Path) -> str:
    """The 1.x config name of a name or a file (a file's stem; a 0.x name mapped to its 1.x name)."""
    stem = Path(name_or_path).stem
    return LEGACY_CONFIG_NAMES.get(stem, stem)


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file path from a path or an mmseg config name (1.x name, or the guide's 0.x name)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    if candidate.suffix == ".py" and (candidate.parent != Path(".") or candidate.is_absolute()):
        raise UserError(f"mmseg config file {candidate} does not exist ({WHERE_CONFIGS_COME_FROM})")
    name = config_name(candidate)
    shipped = shipped_configs()
    if name in shipped:
        return shipped[name]
    close = difflib.get_close_matches(name, list(shipped), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise UserError(f"unknown mmseg config {str(name_or_path)!r}: {WHERE_CONFIGS_COME_FROM}.{hint}")


@dataclass(frozen=True)
class ZooEntry:
    """One model of mmseg's model zoo on one dataset, as its metafile lists it."""

    name: str
    config: str  # the metafile's path, configs/<family>/<name>.py
    weights: str  # the checkpoint URL (its file name ends in -<sha256 prefix>.pth)
    dataset: str
    miou: float | None


def parse_metafile(text: str) -> list[ZooEntry]:
    """The entries of one ``metafile.yaml`` (models without results or weights are left out)."""
    import yaml

    entries = []
    # libyaml's loader where PyYAML has it: every workflow start reads mmseg's 56 metafiles (a dry run of
    # the tests' matrix 2.55 s with the pure-Python loader, 1.94 s with it)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for model in (yaml.load(text, Loader=loader) or {}).get("Models") or []:
        results = model.get("Results") or []
        for result in results if isinstance(results, list) else [results]:
            metrics = result.get("Metrics") or {}
            miou = metrics.get("mIoU")
            entries.append(
                ZooEntry(
                    name=str(model.get("Name")),
                    config=str(model.get("Config", "")),
                    weights=str(model.get("Weights", "")),
                    dataset=str(result.get("Dataset", "")),
                    miou=float(miou) if isinstance(miou, int | float) else None,
                )
            )
    return entries


@cache
def family_entries(metafile: Path) -> tuple[ZooEntry, ...]:
    """The entries of one family's metafile (``configs/<family>/metafile.yaml``; none where it has none)."""
    return tuple(parse_metafile(metafile.read_text())) if metafile.is_file() else ()


@cache
def zoo_entries() -> tuple[ZooEntry, ...]:
    """Every entry of every metafile the wheel ships, in file order."""
    return tuple(
        entry for metafile in sorted(mmseg_config_dir().glob("*/metafile.yaml")) for entry in family_entries(metafile)
    )


def entry_for(name_or_path: str | Path, dataset: str = "Cityscapes") -> ZooEntry | None:
    """The model-zoo entry of this config on ``dataset`` (matched by config name in its family's
    metafile, the one file read), or None: a config of the user's, or one the zoo lists no result for."""
    name = config_name(name_or_path)
    shipped = shipped_configs().get(name)
    if shipped is None:
        return None
    for entry in family_entries(shipped.parent / "metafile.yaml"):
        if entry.dataset == dataset and (entry.name == name or Path(entry.config).stem == name):
            return entry
    return None


def published_miou(name_or_path: str | Path, dataset: str = "Cityscapes") -> float | None:
    """The mIoU mmseg publishes on ``dataset`` for this config, or None where it is not a zoo entry."""
    entry = entry_for(name_or_path, dataset)
    return entry.miou if entry else None


def zoo_checkpoint(name_or_path: str | Path, where: str = "checkpoint") -> str:
    """The checkpoint URL mmseg's model zoo gives for this config (``checkpoint: zoo``); a config that
    is not a Cityscapes zoo entry is a :class:`UserError` naming ``where``."""
    entry = entry_for(name_or_path)
    if entry is None or not entry.weights.startswith(("http://", "https://")):
        raise UserError(
            f"{where}: zoo, but {str(name_or_path)!r} is not an mmseg model-zoo entry on Cityscapes: give its "
            "checkpoint file or URL, or a zoo config name (`python scripts/zoo.py list`)"
        )
    return entry.weights


def cityscapes_entries() -> list[ZooEntry]:
    """Every Cityscapes entry of the model zoo, in metafile order."""
    return [entry for entry in zoo_entries() if entry.dataset == "Cityscapes"]


def family_of(entry: ZooEntry) -> str:
    """The configs/<family>/ folder the metafile lists the entry's config in."""
    return Path(entry.config).parent.name


def one_per_family(entries: Iterable[ZooEntry]) -> list[ZooEntry]:
    """The first entry of each family, in metafile order."""
    chosen: dict[str, ZooEntry] = {}
    for entry in entries:
        chosen.setdefault(family_of(entry), entry)
    return list(chosen.values())


def support_entries(choice: str | Sequence[str] | None) -> list[ZooEntry]:
    """The Cityscapes entries ``zoo.support`` names: ``families`` (the first of each family), ``all``, or a
    list of entry names (an unknown one is a UserError naming the closest)."""
    entries = cityscapes_entries()
    if choice is None:
        return []
    if choice == "families":
        return one_per_family(entries)
    if choice == "all":
        return entries
    by_name = {entry.name: entry for entry in entries}
    unknown = [name for name in choice if name not in by_name]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=3)
        raise UserError(
            f"zoo.support: {unknown[0]!r} is not a Cityscapes entry of the model zoo"
            + (f"; close: {', '.join(close)}" if close else "")
            + " (`python scripts/zoo.py list` lists them)"
        )
    return [by_name[name] for name in dict.fromkeys(choice)]
