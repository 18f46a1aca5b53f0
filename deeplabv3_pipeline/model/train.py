"""A demo checkpoint that has learned something: the model trained by mmseg's own loop on synthetic frames.

The demo's random checkpoint (:func:`~deeplabv3_pipeline.model.mmseg_model.make_random_checkpoint`) makes
every accuracy figure noise. This trains the model of an mmseg config the way mmseg trains it, only
shorter and smaller: mmengine's :class:`~mmengine.runner.Runner` with an ``IterBasedTrainLoop``, the
config's model (its BN, its auxiliary head and both losses), SGD with momentum and a poly schedule, on
the CPU. The data are frames of the demo generator (:mod:`deeplabv3_pipeline.data.demo`), written by its
own dataset writer into a temporary Cityscapes tree (``leftImg8bit/train`` and trainIds PNGs) and read by
mmseg's ``CityscapesDataset`` through mmseg's own pipeline (``LoadImageFromFile``, ``LoadAnnotations``,
``RandomResize``, ``RandomCrop``, ``RandomFlip``, ``PackSegInputs``).

The training frames are never the evaluated ones: the demo evaluates the frames of ``demo.seed``
(indices 0..images-1); training draws its frames with :func:`training_seed` of it, another seed,
recorded in the checkpoint's meta with the iterations, the crop, the seconds and the final loss.

The checkpoint is saved in the format of the random one (``{"meta": ..., "state_dict": ...}``, mmseg's
CLASSES in the meta), so :func:`~deeplabv3_pipeline.model.mmseg_model.load_export_model` loads it.

Notes on what mmseg and mmengine do here:

- SyncBN: the config's ``SyncBN`` needs a process group. The Runner is not distributed here, so its
  ``wrap_model`` reverts every SyncBatchNorm to a plain BatchNorm (``revert_sync_batchnorm``) before
  training; the state dict's keys are those of BN (:func:`train_model` checks them against
  :func:`~deeplabv3_pipeline.model.mmseg_model.build_model`'s model). That revert asks pkgutil whether
  mmcv-full is there, which mmseg_model.py's ``mmcv._ext`` stand-in (no ``__spec__``) makes raise:
  :func:`_stand_in_with_spec` gives it a spec without a loader while training (the answer: no).
- The pipeline and the model call no compiled mmcv op (mmcv-lite's transforms, mmseg's losses).
- Scale: the frames are drawn at a quarter of the demo's 1024x2048 and the crops are small, for time;
  the objects are colours and shapes, so what is learned there holds at the full size.
- No pretrained backbone: the config's ImageNet weights (``open-mmlab://resnet50_v1c``) would be a
  download; the model starts from mmseg's own initialisation, seeded.
- No checkpoint hook and no segmentation visualizer: the weights are taken from the Runner's model at
  the end; the Runner's work dir (its log and scalars) is a temporary folder, removed afterwards.
- Process state: the Runner seeds ``random``, numpy and torch and sets OpenCV's thread count and the
  multiprocessing start method; :func:`train_model` leaves the generators, OpenCV's and torch's thread
  counts and a start method already chosen as it found them (where none was, mmengine's 'fork').
- Reproducible: the frames, the sampler and the transforms are seeded; on one machine with one thread
  count the checkpoint is the same bit for bit (another thread count sums in another order).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import math
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import atomic_path
from deeplabv3_pipeline.model.zoo import resolve_config

LOG = logging.getLogger(__name__)

# The training frames' seed is the demo's seed plus this: another seed, so never the evaluated frames
# (make_demo_dataset draws frame i of seed s from numpy's default_rng([s, i])).
TRAINING_SEED_OFFSET = 1_000_000
TRAIN_SPLIT = "train"


def training_seed(demo_seed: int) -> int:
    """The seed of the training frames for a demo whose evaluated frames are drawn with ``demo_seed``."""
    if demo_seed < 0:
        raise UserError(f"seed {demo_seed} is negative: the demo's seeds are non-negative integers")
    return demo_seed + TRAINING_SEED_OFFSET


@dataclass(frozen=True)
class TrainingOptions:
    """What the short training run is: how long, on what crops of how many frames, at what rate.

    ``frame_shape``: the (H, W) the training frames are drawn at (the demo's layouts at a smaller size);
    each iteration takes ``batch_size`` crops of ``crop`` (H, W) from them, randomly resized by a factor
    in ``ratio_range`` first, as mmseg's Cityscapes pipeline does. ``lr``: SGD's initial rate, decayed
    by mmseg's poly schedule to ``min_lr`` at the last iteration (momentum 0.9, weight decay 5e-4)."""

    iterations: int = 90
    crop: tuple[int, int] = (64, 128)
    frame_shape: tuple[int, int] = (256, 512)
    frames: int = 32
    batch_size: int = 4
    lr: float = 0.01
    min_lr: float = 1e-4
    ratio_range: tuple[float, float] = (0.5, 2.0)
    log_interval: int = 10

    def check(self) -> None:
        """A :class:`UserError` naming the first option out of range."""
        if self.iterations < 1:
            raise UserError(f"iterations {self.iterations}: train at least 1 iteration")
        if self.batch_size < 1 or self.frames < 1:
            raise UserError(f"batch size {self.batch_size} and frames {self.frames} must be at least 1")
        if min(self.crop) < 32 or min(self.frame_shape) < 32:
            raise UserError(
                f"crop {self.crop[0]}x{self.crop[1]} and frames {self.frame_shape[0]}x{self.frame_shape[1]} "
                "must be at least 32 pixels a side (the model's output stride is 8)"
            )
        if not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            raise UserError(f"ratio range {self.ratio_range} must be two positive factors, low first")
        if not (math.isfinite(self.lr) and self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise UserError(f"learning rate {self.lr} (down to {self.min_lr}) must be positive and finite")


@dataclass
class TrainingResult:
    """The trained weights, the loss of every iteration, and the seconds the Runner's training took."""

    state_dict: dict[str, torch.Tensor]
    losses: list[float]
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


def write_training_frames(root: Path, seed: int, count: int, shape: tuple[int, int]) -> None:
    """``count`` demo frames of ``seed`` under ``root``, as mmseg's CityscapesDataset reads them: the demo
    dataset writer's images and labelIds in ``leftImg8bit/train`` and ``gtFine/train``, and each label's
    trainIds PNG beside it (``*_gtFine_labelTrainIds.png``, what the dataset loads)."""
    from deeplabv3_pipeline.data.cityscapes import convert_label_file
    from deeplabv3_pipeline.data.demo import make_demo_dataset

    for frame in make_demo_dataset(root, TRAIN_SPLIT, count, shape, seed):
        convert_label_file(frame.label_ids(root, TRAIN_SPLIT), frame.train_ids(root, TRAIN_SPLIT))


def _train_pipeline(options: TrainingOptions) -> list[dict]:
    height, width = options.frame_shape
    return [
        {"type": "LoadImageFromFile"},
        {"type": "LoadAnnotations"},
        {"type": "RandomResize", "scale": (width, height), "ratio_range": options.ratio_range, "keep_ratio": True},
        {"type": "RandomCrop", "crop_size": options.crop, "cat_max_ratio": 0.75},
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "PackSegInputs"},
    ]


def _model_config(config: str | Path, crop: tuple[int, int]) -> dict:
    """The config's model, as it trains (SyncBN and all), with no pretrained download and batches padded
    to ``crop`` (the config pads them to its own 512x1024 crop)."""
    from mmengine.config import Config

    model = Config.fromfile(str(resolve_config(config))).model.to_dict()
    model["pretrained"] = None
    model.get("backbone", {}).pop("init_cfg", None)
    model["data_preprocessor"] = {**model.get("data_preprocessor", {}), "size": tuple(crop)}
    return model


@contextlib.contextmanager
def _stand_in_with_spec() -> Iterator[None]:
    """The ``mmcv._ext`` stand-in with a module spec that has no loader, while the block lasts.

    The Runner, not distributed, reverts SyncBN to BN (``revert_sync_batchnorm``), which first asks
    whether mmcv-full is there: ``pkgutil.find_loader("mmcv._ext")``. Of a module in ``sys.modules``
    whose ``__spec__`` is None (the stand-in of mmseg_model.py) that raises ValueError; with a spec
    without a loader it answers None: no mmcv-full, which is the truth."""
    module = sys.modules.get("mmcv._ext")
    if module is None or getattr(module, "__spec__", None) is not None:
        yield
        return
    module.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    try:
        yield
    finally:
        module.__spec__ = None


@contextlib.contextmanager
def _process_state_kept(threads: int | None) -> Iterator[None]:
    """Torch's thread count (``threads`` inside), the random generators' states and OpenCV's thread count,
    as they were when the block ends."""
    import cv2

    saved_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        cv2.setNumThreads(cv2_threads)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def _loss_recorder() -> Any:
    """A Runner hook that keeps the total loss of every training iteration (``.losses``)."""
    from mmengine.hooks import Hook

    class LossRecorder(Hook):
        priority = "LOWEST"

        def __init__(self) -> None:
            self.losses: list[float] = []

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            self.losses.append(float(torch.as_tensor(outputs["loss"]).detach()))

    return LossRecorder()


def _runner(
    config: str | Path, data_root: Path, work_dir: Path, seed: int, options: TrainingOptions, hooks: list
) -> Any:
    import multiprocessing

    import cv2
    from mmengine.runner import Runner

    iterations = options.iterations
    return Runner(
        model=_model_config(config, options.crop),
        work_dir=str(work_dir),
        experiment_name=f"train_demo_checkpoint_{uuid.uuid4().hex[:12]}",  # mmengine's loggers are per name
        train_dataloader={
            "batch_size": options.batch_size,
            "num_workers": 0,  # the crops are cheap; workers would take the training's cores
            "persistent_workers": False,
            "sampler": {"type": "InfiniteSampler", "shuffle": True, "seed": seed},
            "dataset": {
                "type": "CityscapesDataset",
                "data_root": str(data_root),
                "data_prefix": {"img_path": f"leftImg8bit/{TRAIN_SPLIT}", "seg_map_path": f"gtFine/{TRAIN_SPLIT}"},
                "pipeline": _train_pipeline(options),
            },
        },
        train_cfg={"type": "IterBasedTrainLoop", "max_iters": iterations, "val_interval": iterations + 1},
        optim_wrapper={
            "type": "OptimWrapper",
            "optimizer": {"type": "SGD", "lr": options.lr, "momentum": 0.9, "weight_decay": 0.0005},
            "clip_grad": None,
        },
        param_scheduler=[
            {
                "type": "PolyLR",
                "eta_min": options.min_lr,
                "power": 0.9,
                "begin": 0,
                "end": iterations,
                "by_epoch": False,
            }
        ],
        default_hooks={
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": options.log_interval, "log_metric_by_epoch": False},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": None,  # the weights are taken from the model itself
            "sampler_seed": None,
        },
        custom_hooks=hooks,
        log_processor={"by_epoch": False},
        log_level="INFO",
        launcher="none",
        env_cfg={
            "cudnn_benchmark": False,
            # as they are: the Runner would set them for the whole process
            "mp_cfg": {
                "mp_start_method": multiprocessing.get_start_method(allow_none=True) or "fork",
                "opencv_num_threads": cv2.getNumThreads(),
            },
            "dist_cfg": {"backend": "gloo"},
        },
        randomness={"seed": seed, "deterministic": False},
        default_scope="mmseg",
    )


def train_model(
    config: str | Path,
    demo_seed: int,
    options: TrainingOptions | None = None,
    threads: int | None = None,
) -> TrainingResult:
    """Train the model of ``config`` on frames of :func:`training_seed` (``demo_seed``) with mmseg's loop.

    ``threads``: torch's intra-op threads while it trains (None: as they are). The result's state dict
    fits :func:`~deeplabv3_pipeline.model.mmseg_model.build_model`'s model key for key."""
    from deeplabv3_pipeline.model.mmseg_model import build_model, install_mmcv_ext_stand_in, state_mismatch

    options = options or TrainingOptions()
    options.check()
    seed = training_seed(demo_seed)
    resolve_config(config)  # an unknown config is a one-line error before any frame is drawn
    install_mmcv_ext_stand_in()
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    with (
        tempfile.TemporaryDirectory(prefix="deeplabv3-train-") as scratch,
        _process_state_kept(threads),
        _stand_in_with_spec(),
    ):
        data_root = Path(scratch) / "cityscapes"
        write_training_frames(data_root, seed, options.frames, options.frame_shape)
        recorder = _loss_recorder()
        runner = _runner(config, data_root, Path(scratch) / "work", seed, options, [recorder])
        try:
            start = time.perf_counter()
            model = runner.train()
            seconds = time.perf_counter() - start
        finally:
            for handler in runner.logger.handlers[:]:  # its log file is in the folder about to go
                if isinstance(handler, logging.FileHandler):
                    handler.close()
                    runner.logger.removeHandler(handler)
        state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    mismatch = state_mismatch(build_model(config).state_dict(), state)
    if mismatch:  # a bug here, not the user's: the Runner's model is not build_model's
        raise RuntimeError(f"the trained state dict does not fit {config}'s model: {mismatch}")
    losses = recorder.losses
    if not losses or not all(math.isfinite(loss) for loss in losses):
        raise UserError(
            f"training diverged (loss {losses[-1] if losses else None} after {len(losses)} iterations): "
            "lower the learning rate"
        )
    meta = training_meta(config, demo_seed, options, seconds, losses, threads)
    return TrainingResult(state, losses, seconds, meta)


# The final loss is the mean of the last iterations' losses: one batch's loss varies with its crops.
FINAL_LOSS_ITERATIONS = 10


def final_loss(losses: list[float]) -> float:
    """The mean loss of the last :data:`FINAL_LOSS_ITERATIONS` iterations (of all, where fewer)."""
    return float(np.mean(losses[-FINAL_LOSS_ITERATIONS:]))


def training_meta(
    config: str | Path,
    demo_seed: int,
    options: TrainingOptions,
    seconds: float,
    losses: list[float],
    threads: int | None,
) -> dict[str, Any]:
    """The checkpoint's meta: mmseg's CLASSES and version, and what the training was (a 'synthetic' note,
    as the random checkpoint's, saying that it is trained, on what, how long)."""
    import mmseg

    from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES

    seed = training_seed(demo_seed)
    name = Path(config).stem
    return {
        "mmseg_version": mmseg.__version__,
        "CLASSES": list(CLASS_NAMES),
        "synthetic": (
            f"{name} trained for {options.iterations} iterations on synthetic demo frames (seed {seed}, not the "
            f"evaluated seed {demo_seed}), crops {options.crop[0]}x{options.crop[1]}: trained, but on drawn "
            "street-like scenes, NOT Cityscapes"
        ),
        "trained": True,
        "training": {
            "config": name,
            # every option but how often it logs, as the JSON has them (tuples as lists)
            **{
                key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(options).items()
                if key != "log_interval"
            },
            "seed": seed,
            "demo_seed": demo_seed,
            "threads": threads or torch.get_num_threads(),
            "seconds": round(seconds, 1),
            "first_loss": round(losses[0], 4),
            "final_loss": round(final_loss(losses), 4),
            "last_loss": round(losses[-1], 4),
            "loop": "mmengine Runner, IterBasedTrainLoop, SGD momentum 0.9, poly lr, decode + auxiliary CE",
        },
        "seed": seed,
    }


def save_checkpoint(result: TrainingResult, path: str | Path) -> Path:
    """``{"meta", "state_dict"}`` at ``path``, atomically (the format of the random checkpoint)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save({"meta": result.meta, "state_dict": result.state_dict}, temporary)
    return path


def train_demo_checkpoint(
    config: str | Path,
    path: str | Path,
    demo_seed: int = 0,
    options: TrainingOptions | None = None,
    threads: int | None = None,
) -> TrainingResult:
    """Train (:func:`train_model`) and save (:func:`save_checkpoint`) a demo checkpoint of ``config``."""
    result = train_model(config, demo_seed, options, threads)
    save_checkpoint(result, path)
    return result
