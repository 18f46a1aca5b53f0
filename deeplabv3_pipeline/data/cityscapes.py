"""Cityscapes conventions: classes, the labelId -> trainId table, file naming, dataset discovery."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from deeplabv3_pipeline.errors import UserError, check_no_wildcard_braces
from deeplabv3_pipeline.io.binio import expand_inputs, write_png

IGNORE_INDEX = 255
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"

CLASS_NAMES: tuple[str, ...] = tuple(
    label.name for label in sorted(CITYSCAPES_LABELS, key=lambda lb: lb.trainId) if 0 <= label.trainId < IGNORE_INDEX
)
NUM_CLASSES = len(CLASS_NAMES)
PALETTE: np.ndarray = np.array(
    [label.color for label in sorted(CITYSCAPES_LABELS, key=lambda lb: lb.trainId) if 0 <= label.trainId < 255],
    dtype=np.uint8,
)
# Every labelId a gtFine labelIds PNG may hold (0..33; -1, the licence plate, is never in a PNG).
VALID_LABEL_IDS = frozenset(label.id for label in CITYSCAPES_LABELS if label.id >= 0)


def label_id_to_train_id_table() -> np.ndarray:
    """A 256-entry lookup table: labelId -> trainId (255 for ignored and for ids Cityscapes does not define)."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in CITYSCAPES_LABELS:
        if label.id >= 0:
            table[label.id] = label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
    return table


def label_ids_to_train_ids(label_ids: np.ndarray, source: str = "label image") -> np.ndarray:
    """Map a labelIds array to trainIds, as cityscapesscripts' createTrainIdLabelImgs does."""
    unknown = sorted(set(np.unique(label_ids).tolist()) - VALID_LABEL_IDS)
    if unknown:
        raise UserError(
            f"{source} holds values {unknown[:8]} that are not Cityscapes labelIds (0..33): "
            "is it a labelIds PNG of gtFine, not a color or instance image?"
        )
    return label_id_to_train_id_table()[label_ids]


def image_stem(image_path: Path) -> str:
    """``frankfurt_000000_000294_leftImg8bit.png`` -> ``frankfurt_000000_000294_leftImg8bit`` (the .bin stem)."""
    return image_path.name.removesuffix(".png")


def frame_id(name: str) -> str:
    """The city_sequence_frame part of any Cityscapes file name (``frankfurt_000000_000294``)."""
    parts = Path(name).name.split("_")
    return "_".join(parts[:3])


@dataclass(frozen=True)
class Frame:
    """One image of the split and where its ground truth lives."""

    city: str
    frame: str  # city_sequence_frame

    @property
    def stem(self) -> str:
        return f"{self.frame}_leftImg8bit"

    def image(self, root: Path, split: str) -> Path:
        return root / "leftImg8bit" / split / self.city / f"{self.frame}{IMAGE_SUFFIX}"

    def label_ids(self, root: Path, split: str) -> Path:
        return root / "gtFine" / split / self.city / f"{self.frame}{LABEL_IDS_SUFFIX}"

    def train_ids(self, root: Path, split: str) -> Path:
        return root / "gtFine" / split / self.city / f"{self.frame}{TRAIN_IDS_SUFFIX}"


def check_split_dirs(root: Path, split: str) -> tuple[Path, Path]:
    """The split's leftImg8bit and gtFine folders, or an error that names the missing one."""
    if not root.is_dir():
        raise UserError(
            f"dataset root {root} does not exist: set dataset.root in config.yaml to the folder that holds "
            "leftImg8bit/ and gtFine/ (or leave it empty for the synthetic demo)"
        )
    folders = (root / "leftImg8bit" / split, root / "gtFine" / split)
    for folder in folders:
        if not folder.is_dir():
            raise UserError(
                f"{folder} does not exist: dataset.root must hold leftImg8bit/{split}/<city>/ and "
                f"gtFine/{split}/<city>/, as leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip unpack"
            )
    return folders


def discover_frames(root: Path, split: str) -> list[Frame]:
    """Every image of the split, sorted, each checked to have its gtFine label (and the reverse)."""
    image_dir, label_dir = check_split_dirs(root, split)
    images = {frame_id(p.name): p.parent.name for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}")}
    labels = {
        frame_id(p.name): p.parent.name
        for pattern in (f"*/*{LABEL_IDS_SUFFIX}", f"*/*{TRAIN_IDS_SUFFIX}")
        for p in label_dir.glob(pattern)
    }
    if not images:
        raise UserError(f"no *{IMAGE_SUFFIX} under {image_dir}/<city>/: is dataset.split right?")
    for frame, city in images.items():
        check_no_wildcard_braces(Frame(city, frame).image(root, split), "image")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        example = Frame(images[unlabelled[0]], unlabelled[0])
        raise UserError(
            f"{len(unlabelled)} images have no gtFine label, e.g. {example.image(root, split)} has neither "
            f"{example.label_ids(root, split)} nor {example.train_ids(root, split)}"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        example = Frame(labels[orphans[0]], orphans[0])
        raise UserError(
            f"{len(orphans)} gtFine labels have no image, e.g. {example.label_ids(root, split)} has no "
            f"{example.image(root, split)}"
        )
    return [Frame(city, frame) for frame, city in sorted(images.items())]


def shard(items: list, index: int, count: int) -> list:
    """Part ``index`` of ``count`` balanced, contiguous parts of ``items`` (sizes differ by at most one)."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    base, extra = divmod(len(items), count)
    start = index * base + min(index, extra)
    return items[start : start + base + (1 if index < extra else 0)]


def dataset_id(root: Path) -> str:
    """A folder name for what is derived from the dataset at ``root``: its name and a hash of its absolute path.

    Two roots never share derived files (a copy holding a subset of the frames has other bins and
    predictions), and switching back to a root finds its files again.
    The name part keeps letters, digits, ``.``, ``-`` and ``_`` of the folder's name (others become ``_``):
    the hash tells roots apart, the name is for a person reading results/.
    """
    absolute = str(Path(root).resolve())
    name = re.sub(r"[^\w.-]+", "_", Path(absolute).name) or "root"
    return f"{name}-{hashlib.sha256(absolute.encode()).hexdigest()[:8]}"


def index_by_frame(paths: Iterable[Path], what: str) -> dict[str, Path]:
    """Frame id -> file; two different files of one frame are an error naming both."""
    found: dict[str, Path] = {}
    for path in map(Path, paths):
        key = frame_id(path.name)
        if key in found and found[key] != path:
            raise UserError(f"two {what} files for frame {key}: {found[key]} and {path}")
        found[key] = path
    return found


def frame_files(paths: Sequence[Path], suffix: str, what: str) -> dict[str, Path]:
    """Frame id -> file, for the files given and every ``*{suffix}`` below the folders given."""
    return index_by_frame(expand_inputs(paths, f"*{suffix}", what, recursive=True), what)


def missing_train_ids(gt_path: Path) -> list[Path]:
    """labelIds PNGs under ``gt_path/<city>/`` whose trainIds sibling does not exist, sorted."""
    return sorted(
        path
        for path in gt_path.glob(f"*/*{LABEL_IDS_SUFFIX}")
        if not path.with_name(path.name.replace(LABEL_IDS_SUFFIX, TRAIN_IDS_SUFFIX)).exists()
    )


def train_ids_path(label_ids: Path, output: Path) -> Path:
    """Where the trainIds PNG of ``label_ids`` goes under ``output`` (``<city>/<frame>_gtFine_labelTrainIds.png``)."""
    return output / label_ids.parent.name / label_ids.name.replace(LABEL_IDS_SUFFIX, TRAIN_IDS_SUFFIX)


def convert_label_file(label_ids: Path, destination: Path, shape: tuple[int, int] | None = None) -> None:
    """One labelIds PNG -> its trainIds PNG (atomically); with ``shape``, the label must be of the images' size."""
    import cv2  # here: planning imports this module and never reads an image

    label = cv2.imread(str(label_ids), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise UserError(f"label image {label_ids} is corrupt or not a single-channel labelIds PNG")
    if shape is not None and label.shape != tuple(shape):
        raise UserError(
            f"label image {label_ids} is {label.shape[0]}x{label.shape[1]} (HxW) but the images are "
            f"{shape[0]}x{shape[1]} (model.input_shape): it is not this frame's label; replace it with the frame's own"
        )
    write_png(destination, label_ids_to_train_ids(label, source=str(label_ids)))
