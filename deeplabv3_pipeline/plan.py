"""Which files a run makes: the frames of the config, their shards, and the path of every per-frame and
per-backend file, each spelled once.

``rules/common.smk`` builds one :class:`Plan` from the config and its ``get_*`` functions read it; the
plan is plain data with no Snakemake in it, so it is unit-tested without a dry run (tests/test_plan.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .cityscapes import Frame, dataset_id, discover_frames, shard
from .demo import demo_frames

DEMO_ROOT = Path("results/demo/cityscapes")


@dataclass(frozen=True)
class Plan:
    """The frames of one config and where everything derived from them goes.

    What derives from the frames lives under ``data`` (``<dataset id>/<split>``): another root or split
    never reads or overwrites it, and switching back finds it again.
    """

    root: Path
    split: str
    dataset: str  # "demo", or <root folder name>-<8 hex of its absolute path>
    frames: tuple[Frame, ...]
    shard_count: int
    frames_without_train_ids: tuple[Frame, ...]  # the `labels` rule makes theirs under results/

    @classmethod
    def from_config(cls, config: Mapping) -> Plan:
        """The plan of a validated config: discovers the frames (UserError for a bad dataset root)."""
        split = config["dataset"]["split"]
        demo = not config["dataset"]["root"]
        root = DEMO_ROOT if demo else Path(config["dataset"]["root"])
        frames = tuple(demo_frames(config["demo"]["images"]) if demo else discover_frames(root, split))
        without = tuple(frame for frame in frames if demo or not frame.train_ids(root, split).exists())
        return cls(
            root=root,
            split=split,
            dataset="demo" if demo else dataset_id(root),
            frames=frames,
            # more shards than frames would make empty jobs: each frame gets its own shard instead
            shard_count=min(config["shards"], len(frames)),
            frames_without_train_ids=without,
        )

    @property
    def demo(self) -> bool:
        return self.dataset == "demo"

    @property
    def data(self) -> str:
        return f"{self.dataset}/{self.split}"

    @property
    def shards(self) -> list[int]:
        return list(range(self.shard_count))

    def shard_frames(self, index: int) -> list[Frame]:
        return shard(list(self.frames), index, self.shard_count)

    # ------------------------------------------------------------------ inputs

    def image(self, frame: Frame) -> str:
        return str(frame.image(self.root, self.split))

    def label_ids(self, frame: Frame) -> str:
        return str(frame.label_ids(self.root, self.split))

    def made_train_ids(self, frame: Frame) -> str:
        """Where the `labels` rule writes a frame's trainIds (the dataset folder is never written to)."""
        return f"results/labels/{self.data}/{frame.city}/{frame.frame}_gtFine_labelTrainIds.png"

    @cached_property
    def _made_labels(self) -> frozenset[Frame]:
        return frozenset(self.frames_without_train_ids)

    def train_ids(self, frame: Frame) -> str:
        """The trainIds label evaluation reads: the made one, or the dataset's own."""
        if frame in self._made_labels:
            return self.made_train_ids(frame)
        return str(frame.train_ids(self.root, self.split))

    def prep_bin(self, frame: Frame) -> str:
        return f"results/prep_dataset/{self.data}/{frame.stem}.bin"

    # ------------------------------------------------------------------ per backend

    def prediction(self, backend: str, frame: Frame) -> str:
        """ais_bench's naming: ``{stem}_0.bin``. ``backend`` may be ``{backend}``, a Snakemake wildcard."""
        return f"results/infer/{self.data}/{backend}/{frame.stem}_0.bin"

    def shard_summary(self, backend: str, index: int) -> str:
        return f"results/infer/{self.data}/{backend}/shards/{index}.json"

    def summary(self, backend: str) -> str:
        return f"results/infer/{self.data}/{backend}/summary.json"

    def predictions(self, backend: str) -> list[str]:
        return [self.prediction(backend, frame) for frame in self.frames]

    @staticmethod
    def result(backend: str) -> str:
        """A backend's result.json (its result.txt beside it). Not under ``data``: the config names
        one dataset, and the result records which."""
        return f"results/{backend}/result.json"

    @staticmethod
    def result_text(backend: str) -> str:
        """The guide's ``aAcc: x`` / ``mIoU: y`` beside :meth:`result`."""
        return f"results/{backend}/result.txt"


def note_clamped_shards(plan: Plan, asked: int) -> None:
    """Say it when the config asks for more shards than there are frames."""
    if plan.shard_count < asked:
        print(
            f"note: shards: {asked} but only {len(plan.frames)} frames: running {plan.shard_count} shards",
            file=sys.stderr,
        )
