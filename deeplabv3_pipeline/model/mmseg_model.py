"""mmsegmentation 1.2.2 models: build, checkpoint loading, the export wrapper (whole or slide mode).

Why the stand-in for ``mmcv._ext``: mmsegmentation 1.2.2 imports ``mmcv.ops`` at import time,
and every op module there asks ``mmcv._ext`` (the compiled extension of mmcv-full) for its
kernels. mmcv-lite ships no such extension. DeepLabV3-R50 calls none of those kernels, so a
module that *names* them (and raises if one is ever called) lets mmseg import. It is put in
``sys.modules`` only when a real ``mmcv._ext`` cannot be imported, so a full mmcv wins.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.checkpoint import not_a_checkpoint_reason, verify_checkpoint
from deeplabv3_pipeline.model.footprint import MIB, Footprint
from deeplabv3_pipeline.model.inference_mode import (
    InferenceMode,
    InferenceModeOptions,
    inference_mode,
    slide_windows,
)
from deeplabv3_pipeline.model.zoo import resolve_config


def _missing_kernel(name: str) -> types.FunctionType:
    if name.startswith("__"):  # __file__, __path__, ...: tools like inspect probe these
        raise AttributeError(name)

    def kernel(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(
            f"mmcv._ext.{name} is a compiled mmcv-full kernel; this environment has mmcv-lite. "
            "DeepLabV3 does not need it: install mmcv-full only for models that do."
        )

    return kernel


def install_mmcv_ext_stand_in() -> bool:
    """Register a stand-in ``mmcv._ext`` when the compiled one is absent. Returns True if installed."""
    if "mmcv._ext" in sys.modules:
        return False
    try:
        if importlib.util.find_spec("mmcv._ext") is not None:
            return False
    except ModuleNotFoundError:  # no mmcv at all: importing mmseg will say so itself
        return False
    stand_in = types.ModuleType("mmcv._ext", "Stand-in for mmcv-full's compiled ops (see mmseg_model.py).")
    stand_in.__getattr__ = _missing_kernel  # type: ignore[method-assign]  # module-level __getattr__ (PEP 562)
    sys.modules["mmcv._ext"] = stand_in
    return True


def _plain_batch_norm(node: Any) -> Any:
    """SyncBN needs a process group; for export and CPU inference it is plain BN with the same weights."""
    if isinstance(node, dict):
        return {
            key: ("BN" if key == "type" and value == "SyncBN" else _plain_batch_norm(value))
            for key, value in node.items()
        }
    if isinstance(node, list | tuple):
        return type(node)(_plain_batch_norm(item) for item in node)
    return node


def build_model(config: str | Path) -> nn.Module:
    """Build the segmentor of an mmseg config, with BN for SyncBN and no pretrained download, in eval mode."""
    install_mmcv_ext_stand_in()
    from mmengine.config import Config, ConfigDict
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(resolve_config(config)))
    model_cfg = _plain_batch_norm(cfg.model.to_dict())
    model_cfg["pretrained"] = None  # the checkpoint holds every weight; never reach for the ImageNet one
    model_cfg.get("backbone", {}).pop("init_cfg", None)
    model = MODELS.build(ConfigDict(model_cfg))
    return model.eval()


def load_state_dict_file(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint, read with ``weights_only=True`` (tensors and plain data only)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist: download it (README, 'Real data') "
            "or set model.checkpoint in config.yaml"
        )
    # What the file is, first (an empty file, a web page, text), then the sha256 its name promises
    # (...-acadc2f8.pth): a wrong file is refused before torch.load reads it.
    reason = not_a_checkpoint_reason(path)
    if reason:
        raise UserError(f"checkpoint {path} {reason}")
    verify_checkpoint(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported operand" in str(error):  # bytes that are no pickle program: damage, not a refusal
            raise UserError(f"checkpoint {path} is a damaged pickle: download it again") from error
        raise UserError(
            f"checkpoint {path} holds objects that only unsafe unpickling can load; refusing "
            "(torch.load weights_only=True). Re-save just its state dict: "
            "torch.save({'state_dict': model.state_dict()}, path)."
        ) from error
    except Exception as error:  # zipfile, pickle and storage errors of a damaged file: torch raises many kinds
        raise UserError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}): is it truncated? Download it again."
        ) from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict (a dict of tensors, or one under 'state_dict')")
    return {key.removeprefix("module."): value for key, value in state.items()}


def state_mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """How a state dict misses the model's keys: counts and first names of missing, unexpected and
    wrongly shaped keys (None: it fits)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if keys:
            parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:4])})")
    return "; ".join(parts) or None


def load_checkpoint(model: nn.Module, checkpoint: str | Path, config: str | Path = "model.config") -> nn.Module:
    """Load a checkpoint into ``model``; every key and shape must fit, or the error lists the first mismatches."""
    state = load_state_dict_file(checkpoint)
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(
            f"checkpoint {checkpoint} does not fit the model config {config}: {mismatch}. "
            "Is it the checkpoint of another model? Give each model the config it was trained with."
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


def check_checkpoint_fits(config: str | Path, checkpoint: str | Path) -> None:
    """A :class:`UserError` naming both and the mismatched keys unless ``checkpoint`` fits ``config``."""
    load_checkpoint(build_model(config), checkpoint, config)


class SegmentationExport(nn.Module):
    """The segmentor as one graph: logits, bilinear resize, argmax, in the model's test mode.

    'whole' (mmseg's whole_inference): logits at 1/8 resized to the input size. 'slide' (mmseg's
    slide_inference): the crops of :func:`slide_windows` unrolled, each crop's logits resized to the
    crop and padded to the input size, summed in mmseg's order and divided by how many crops cover
    each pixel (a constant of the graph). Either way the exported model maps a normalised (1,3,H,W)
    float32 image to (1,1,H,W) int64 class ids, as mmseg's pytorch2onnx did. ``mode``: the config's
    ``test_cfg`` unless given; with its ``test_shape`` the model runs at that size (:meth:`logits`).
    """

    def __init__(self, segmentor: nn.Module, input_shape: tuple[int, int], mode: InferenceMode | None = None) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.input_shape = tuple(input_shape)
        self.mode = mode or inference_mode(getattr(segmentor, "test_cfg", None))
        # the size the model runs at (its test pipeline's resize of the image), the input's by default
        self.test_shape = tuple(self.mode.test_shape or self.input_shape)
        self.windows: list[tuple[int, ...]] = []
        if self.mode.mode == "slide":
            self.windows = slide_windows(self.test_shape, self.mode.crop_size, self.mode.stride)
            count = torch.zeros(1, 1, *self.test_shape)
            for y1, y2, x1, x2 in self.windows:
                count[:, :, y1:y2, x1:x2] += 1
            self.register_buffer("crop_count", count, persistent=False)

    def whole_logits(self, image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """The segmentor's own encode_decode: its decode head's prediction (the head's own choice of
        outputs: DANet's first, a cascade's last stage) resized to ``size`` as the head resizes."""
        size = tuple(int(side) for side in size)
        return self.segmentor.encode_decode(image, [{"img_shape": size, "pad_shape": size}])

    def test_logits(self, image: torch.Tensor) -> torch.Tensor:
        """mmseg's inference (whole or slide) of an image of the test size: logits at that size."""
        if not self.windows:
            return self.whole_logits(image, self.test_shape)
        height, width = self.test_shape
        total = None
        for y1, y2, x1, x2 in self.windows:
            crop = self.whole_logits(image[:, :, y1:y2, x1:x2], (y2 - y1, x2 - x1))
            padded = nn.functional.pad(crop, (x1, width - x2, y1, height - y2))
            total = padded if total is None else total + padded
        return total / self.crop_count

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Logits at the input size. At another test size, as mmseg's test pipeline and postprocess: the
        image resized to it first (bilinear; mmseg's Resize does it to the uint8 image with cv2), the
        logits resized back to the image (bilinear, the segmentor's align_corners)."""
        if self.test_shape == self.input_shape:
            return self.test_logits(image)
        resized = nn.functional.interpolate(image, size=self.test_shape, mode="bilinear", align_corners=False)
        logits = self.test_logits(resized)
        corners = self.segmentor.align_corners
        return nn.functional.interpolate(logits, size=self.input_shape, mode="bilinear", align_corners=corners)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(image).argmax(dim=1, keepdim=True)


# A model runs here when it builds and its export graph runs on a zero image of this size (small: the
# check is seconds, once per config; large enough for every stride-32 backbone and pyramid).
PROBE_SHAPE = (128, 256)


@dataclass(frozen=True)
class Probe:
    """What the start check found of a model: why it cannot run here (one clause), or its footprint."""

    problem: str | None
    footprint: Footprint | None = None


def probe_model(config: str | Path, opset: int | None = None) -> Probe:
    """Whether the model of ``config`` runs in this environment, and its :class:`Footprint` where it does.

    It is built and its export graph (:class:`SegmentationExport`) run once on a zero image of
    ``PROBE_SHAPE``, random weights: a model that calls one of mmcv-full's compiled kernels (PSANet's
    PSAMask, ...) reaches the mmcv._ext stand-in there, a model of another OpenMMLab package (mmdet's
    Mask2Former heads) fails to build. With ``opset``, the graph is also exported to ONNX at that opset
    (with the export's exact rewrites), as the export job would: an operator that opset lacks (CCNet's
    einsum below 12, SegFormer's unflatten below 13) is named before any job. That forward pass is also
    where the footprint is measured (its weights, its largest module output, its seconds), from which
    the export jobs are sized (model/footprint.py)."""
    largest = [0]

    def note_output(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    try:
        model = SegmentationExport(build_model(config), PROBE_SHAPE)
        hooks = [module.register_forward_hook(note_output) for module in model.modules()]
        try:
            start = time.perf_counter()
            with torch.inference_mode():
                model(torch.zeros(1, 3, *PROBE_SHAPE))
            seconds = time.perf_counter() - start
        finally:
            for hook in hooks:
                hook.remove()
    except UserError:
        raise
    except RuntimeError as error:
        kernel = str(error).split(" is a compiled mmcv-full kernel")[0]
        if kernel != str(error):
            return Probe(f"it calls {kernel}, a compiled kernel of mmcv-full, which this environment (mmcv-lite) lacks")
        first_line = str(error).splitlines()[0][:200]
        return Probe(f"its graph fails on a {PROBE_SHAPE[0]}x{PROBE_SHAPE[1]} image ({first_line})")
    except ImportError as error:
        return Probe(f"it needs the {error.name or 'missing'} package ({error})")
    except (KeyError, TypeError, AttributeError, ValueError, NotImplementedError) as error:
        return Probe(
            f"it does not build here ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
        )
    problem = None if opset is None else export_problem(model, opset)
    if problem:
        return Probe(problem)
    tensors = [*model.segmentor.parameters(), *model.segmentor.buffers()]
    weight_bytes = sum(tensor.numel() * tensor.element_size() for tensor in tensors)
    pixels = PROBE_SHAPE[0] * PROBE_SHAPE[1]
    return Probe(None, Footprint(weight_bytes / MIB, largest[0] / MIB, pixels, round(seconds, 4)))


def run_problem(config: str | Path, opset: int | None = None) -> str | None:
    """Why the model of ``config`` cannot run in this environment, in one clause, or None (:func:`probe_model`)."""
    return probe_model(config, opset).problem


@contextlib.contextmanager
def _stdout_discarded() -> Iterator[None]:
    """File descriptor 1 to /dev/null while it lasts: on a failed export, PyTorch's exporter prints the whole
    TorchScript graph there from C++ (thousands of lines), which the check's one-line reason replaces; it
    would otherwise flood the parse's output and `zoo.py check`'s table."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def export_problem(model: SegmentationExport, opset: int) -> str | None:
    """Why ``model`` does not export to ONNX at ``opset`` (the exporter's first line), or None."""
    import tempfile

    from deeplabv3_pipeline.model.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="deeplabv3-export-check-") as scratch:
        try:
            with _stdout_discarded():
                export_onnx(model, Path(scratch) / "model.onnx", opset)
        except Exception as error:  # the exporter raises many kinds (unsupported operator, symbolic errors)
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            return f"its ONNX export at opset {opset} (model.opset) fails: {reason}"
    return None


class ModelCannotRun(UserError):
    """A model that cannot run here; ``reason`` is :func:`run_problem`'s clause (the support table's)."""

    def __init__(self, config: str | Path, reason: str) -> None:
        super().__init__(
            f"model config {config} cannot run in this workflow here: {reason}. Choose another model "
            "(`python scripts/zoo.py list` lists the zoo's), or install what it needs"
        )
        self.reason = reason


def check_model_runs(config: str | Path, opset: int | None = None) -> Footprint:
    """The model's footprint, or a :class:`ModelCannotRun` saying why the model of ``config`` cannot run here
    (:func:`probe_model`)."""
    probe = probe_model(config, opset)
    if probe.problem or probe.footprint is None:
        raise ModelCannotRun(config, probe.problem or "")
    return probe.footprint


def randomize_for_varied_predictions(model: nn.Module, seed: int) -> None:
    """Make an untrained model predict many classes, in patches, instead of one class everywhere.

    A freshly initialised network predicts nearly one class everywhere, and then a test that
    compares two backends passes whatever they do. So: random BN statistics and affine
    weights, a classifier with unit-variance weights, and a classifier bias that cancels the
    mean feature (measured on a random input), so that no class wins by its offset alone.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(count, generator=generator) * 0.5 + 0.75)
            module.weight.data.copy_(torch.rand(count, generator=generator) * 0.5 + 0.75)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.1)
    head = model.decode_head
    classifier = head.conv_seg
    classifier.weight.data.copy_(torch.randn(classifier.weight.shape, generator=generator))
    classifier.weight.data /= classifier.weight.shape[1] ** 0.5
    # the classifier's own input, whatever the head computes before it (ASPP, PSP, DeepLabV3+'s fusion)
    seen: list[torch.Tensor] = []
    hook = classifier.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    try:
        with torch.inference_mode():
            head(model.extract_feat(torch.randn(1, 3, 64, 128, generator=generator)))
    finally:
        hook.remove()
    with torch.inference_mode():
        classifier.bias.data.copy_(-(classifier.weight[:, :, 0, 0] @ seen[0].mean(dim=(0, 2, 3))))


def make_random_checkpoint(config: str | Path, path: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised model in the mmseg 0.x checkpoint format (``meta`` + ``state_dict``).

    Used for the demo and the tests: the real checkpoint cannot be downloaded everywhere.
    The meta, like a real 0.x checkpoint's, has no ``PALETTE``.
    """
    torch.manual_seed(seed)
    model = build_model(config)
    randomize_for_varied_predictions(model, seed)
    from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES

    meta = {
        "mmseg_version": "0.15.0+fa1554f",
        "CLASSES": list(CLASS_NAMES),
        "synthetic": f"randomly initialised {Path(config).stem} for the demo and the tests: NOT trained",
        "seed": seed,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)
    return path


def load_export_model(
    config: str | Path,
    checkpoint: str | Path,
    input_shape: tuple[int, int],
    mode_options: InferenceModeOptions | None = None,
) -> SegmentationExport:
    """Config + checkpoint -> the export wrapper, in eval mode, on the CPU; its test mode the config's
    ``test_cfg`` with ``mode_options`` over it."""
    segmentor = load_checkpoint(build_model(config), checkpoint, config)
    mode = inference_mode(getattr(segmentor, "test_cfg", None), mode_options)
    return SegmentationExport(segmentor, input_shape, mode).eval()


def export_model_of(args: Any) -> SegmentationExport:
    """The export wrapper that a stage CLI's flags name: ``config``, ``--checkpoint``, ``--shape`` and the
    test-mode flags of :class:`InferenceModeOptions` (scripts/export_onnx.py, scripts/verify_onnx.py)."""
    from deeplabv3_pipeline.options import from_namespace

    mode = from_namespace(InferenceModeOptions, args)
    return load_export_model(args.config, args.checkpoint, tuple(args.shape), mode)


def predict_class_ids(model: SegmentationExport, image: np.ndarray) -> np.ndarray:
    """Run the wrapper in PyTorch on one (1,3,H,W) float32 array; (1,1,H,W) int64 class ids."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(image))).numpy()
