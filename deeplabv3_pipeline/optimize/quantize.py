"""int8 post-training quantization of the exported model: what every quantizer shares (settings, the
calibration images and their reader, the float tail, the record; the agreement check is
evaluation/agreement.py). The quantizers are the backends' own (the ``QUANTIZER`` their package names):
ONNX Runtime's static QDQ in ``backends/onnxruntime/quantize.py``, OpenVINO NNCF in ``backends/openvino/quantize.py``.

The simplified fp32 ONNX model (input ``input`` float32 1x3xHxW, output ``output`` int64 1x1xHxW)
becomes a QDQ model: QuantizeLinear/DequantizeLinear pairs around every quantized op, which ONNX
Runtime fuses into integer kernels (QLinearConv, ...). Weights are int8 per output channel,
activations 8-bit per tensor with ranges measured (min/max) on N preprocessed ``.bin`` images.
The second quantizer, OpenVINO NNCF, quantizes the same model on the same images to OpenVINO IR.

The tail stays float: the classifier (the last Conv, 512 -> 19 channels at 1/8 resolution,
a negligible share of the compute) and everything after it (bilinear Resize, ArgMax). An
8-bit logit before the argmax would turn near-ties into ties and flip classes for nothing.

Calibration data must be real preprocessed images (``results/prep_dataset``): ranges measured on
random noise are not the ranges of street scenes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplabv3_pipeline.errors import UserError, recompute_hint
from deeplabv3_pipeline.io.binio import file_sha256, list_bins, read_bin, read_onnx

if TYPE_CHECKING:
    from deeplabv3_pipeline.optimize.mixed import MixedSearch

LOG = logging.getLogger(__name__)
DEFAULT_CALIBRATION_IMAGES = 8
# The type names QuantizeSettings takes (each quantizer maps them to its own).
QUANT_TYPES = ("uint8", "int8")


@dataclass(frozen=True)
class QuantizeSettings:
    """What decides the int8 model; written next to it as JSON.

    ``quantizer``: ``onnxruntime`` (static QDQ ONNX, runs in ONNX Runtime and OpenVINO) or ``openvino``
    (NNCF post-training quantization to OpenVINO IR; NNCF's PERFORMANCE preset decides the
    types there, so ``activation_type``/``reduce_range``/``pre_process`` apply to onnxruntime only).
    Calibration is min/max: the histogram methods keep every activation of every image in memory
    (gigabytes per 1024x2048 image).
    """

    quantizer: str = "onnxruntime"
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    calibrate_method: str = "minmax"
    activation_type: str = "uint8"
    # Zero point 0 for activations too (int8, range +-max|x|): the only kind TensorRT takes (rule quantize_tensorrt).
    activation_symmetric: bool = False
    # Conv biases as int32 behind DequantizeLinear (ONNX Runtime's default); TensorRT's parser takes only
    # int8 into a DequantizeLinear and folds float biases itself, so its model keeps them float.
    quantize_bias: bool = True
    weight_type: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    quant_format: str = "QDQ"
    float_tail: bool = True
    pre_process: bool = True


@dataclass
class QuantizeRecord:
    """The settings plus what the run found: the files used, the nodes left in float, the agreement check."""

    settings: QuantizeSettings
    source_model: str
    source_sha256: str
    output_model: str
    input_shape: tuple[int, int]
    calibration_files: list[str]
    float_nodes: list[str]
    quantized_node_count: int
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    agreement: dict[str, Any] = field(default_factory=dict)
    # a mixed model's search (optimize/mixed.py): target, bounds, float_layers, figures, evaluations, seconds
    mixed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def select_calibration_files(candidates: Sequence[Path], count: int) -> list[Path]:
    """``count`` files spread evenly over the sorted ``candidates`` (all of them when there are fewer).

    Cityscapes val is sorted by city, so evenly spaced picks cover several cities instead of the
    first one only. Deterministic: the same list and count always give the same files.
    """
    if count < 1:
        raise UserError(f"--calibration-images must be at least 1, got {count}")
    ordered = sorted(dict.fromkeys(Path(path) for path in candidates))
    if not ordered:
        raise UserError("no calibration images: give preprocessed .bin files (results/prep_dataset); run preprocess")
    if count >= len(ordered):
        return ordered
    indices = np.linspace(0, len(ordered) - 1, count).round().astype(int)
    return [ordered[index] for index in dict.fromkeys(indices.tolist())]


def held_out_files(candidates: Sequence[Path], calibration: Sequence[Path], count: int) -> list[Path]:
    """``count`` check images spread over the candidates not used for calibration (the calibration ones if none)."""
    if count < 1:
        return []
    chosen = set(map(Path, calibration))
    rest = [path for path in map(Path, candidates) if path not in chosen]
    return select_calibration_files(rest, count) if rest else sorted(chosen)[:count]


def agreement_files(
    candidates: Sequence[Path], calibration: Sequence[Path], check_data: Sequence[Path] | None, count: int
) -> list[Path]:
    """The agreement check's images: ``count`` of ``check_data`` when given, else held out from the
    calibration candidates (none when ``count`` is 0)."""
    if not count:
        return []
    if check_data:
        return select_calibration_files(calibration_bins(check_data), count)
    return held_out_files(candidates, calibration, count)


def model_files(output: Path) -> list[Path]:
    """The files of an int8 model: the ``.onnx``, or OpenVINO IR's ``.xml`` and its ``.bin``."""
    return [output, output.with_suffix(".bin")] if output.suffix == ".xml" else [output]


def calibration_bins(sources: Sequence[Path]) -> list[Path]:
    """The preprocessed ``.bin`` files among ``sources`` (files, or folders of them)."""
    found = list_bins(sources, "calibration input")
    for path in found:
        if path.suffix != ".bin":
            raise UserError(f"calibration input {path} is not a preprocessed .bin file (results/prep_dataset)")
    return found


def model_input(model_path: Path) -> tuple[str, tuple[int, int]]:
    """Name and fixed (H, W) of the model's single float32 (1,3,H,W) input; a clear error otherwise."""
    import onnx

    if not model_path.is_file():
        raise UserError(f"model {model_path} does not exist: run export_onnx and simplify_onnx first")
    model = read_onnx(model_path, external_data=False)
    if any(node.op_type in ("QuantizeLinear", "QLinearConv", "ConvInteger") for node in model.graph.node):
        raise UserError(f"{model_path} is already quantized: give the fp32 model (deeplabv3_sim_bs1.onnx)")
    inputs = [item for item in model.graph.input if item.name not in {init.name for init in model.graph.initializer}]
    if len(inputs) != 1:
        raise UserError(f"{model_path} has {len(inputs)} inputs, expected one image input")
    tensor_type = inputs[0].type.tensor_type
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
    if tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or dims[:2] != [1, 3] or None in dims:
        raise UserError(
            f"{model_path} input {inputs[0].name} is not float32 (1,3,H,W) with fixed sizes ({dims}): "
            "quantize the simplified model with a fixed input shape"
        )
    return inputs[0].name, (int(dims[2]), int(dims[3]))


def float_tail_nodes(graph: Any) -> list[str]:
    """Names of the last Conv and every node downstream of it (Resize, ArgMax): left in float."""
    convs = [node for node in graph.node if node.op_type == "Conv"]
    if not convs:
        raise UserError("the model has no Conv: is it the DeepLabV3 export?")
    last = convs[-1]  # ONNX graphs are topologically sorted
    tail = [last.name]
    reached = set(last.output)
    for node in graph.node:
        if any(name in reached for name in node.input):
            tail.append(node.name)
            reached.update(node.output)
    return tail


def read_calibration_images(files: Sequence[Path], shape: tuple[int, int]) -> list[np.ndarray]:
    """Every calibration ``.bin`` as float32 (1,3,H,W); a wrong size names the file (read_bin's check)."""
    images = [read_bin(path, np.float32, (1, 3, *shape)) for path in files]
    for path, image in zip(files, images, strict=True):
        if not np.isfinite(image).all():
            raise UserError(f"calibration image {path} holds NaN or infinite values: {recompute_hint(path)}")
    return images


class BinCalibrationReader:
    """onnxruntime.quantization's CalibrationDataReader over preprocessed ``.bin`` files, one image a batch.

    Files are read lazily (a 1024x2048 image is 25 MB) and each is checked for its exact size.
    """

    def __init__(self, files: Sequence[Path], input_name: str, shape: tuple[int, int]) -> None:
        self.files = list(files)
        self.input_name = input_name
        self.shape = shape
        self._iterator: Iterator[Path] = iter(self.files)

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._iterator, None)
        if path is None:
            return None
        (image,) = read_calibration_images([path], self.shape)
        return {self.input_name: image}

    def rewind(self) -> None:
        self._iterator = iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def quantizers() -> dict[str, Any]:
    """The backends that quantize (their ``Quantizer``), by name: the registry's, imported when asked
    (the backends' quantize modules import this one)."""
    from deeplabv3_pipeline.backends import REGISTRY

    return {name: spec.quantizer for name, spec in REGISTRY.items() if spec.quantizer is not None}


def check_settings(settings: QuantizeSettings) -> Any:
    """The settings' ``Quantizer``, once the settings are checked."""
    available = quantizers()
    if settings.quantizer not in available:
        raise UserError(f"unknown quantizer {settings.quantizer!r}: choose one of {', '.join(available)}")
    if settings.activation_symmetric and settings.activation_type != "int8":
        raise UserError("symmetric activations need --activation-type int8 (a uint8 range centred on 0 wastes a bit)")
    if settings.calibrate_method != "minmax":
        raise UserError("only min/max calibration is supported (histogram methods do not fit 1024x2048 in memory)")
    for name, value in (("activation type", settings.activation_type), ("weight type", settings.weight_type)):
        if value not in QUANT_TYPES:
            raise UserError(f"unknown {name} {value!r}: choose one of {', '.join(QUANT_TYPES)}")
    return available[settings.quantizer]


def quantize_model(
    source: Path,
    output: Path,
    calibration_files: Sequence[Path],
    settings: QuantizeSettings | None = None,
    search: MixedSearch | None = None,
) -> QuantizeRecord:
    """Quantize the fp32 ONNX ``source`` to ``output`` with ranges measured on ``calibration_files``.

    ``settings.quantizer`` picks ONNX Runtime (``output`` a QDQ ``.onnx``) or OpenVINO NNCF
    (``output`` an IR ``.xml`` with its ``.bin``). With ``search``, the quantizer's mixed-precision search
    keeps the fewest layers in float that meet its target (optimize/mixed.py). The output appears complete
    or not at all.
    """
    settings = settings or QuantizeSettings()
    quantizer = check_settings(settings)
    input_name, shape = model_input(source)
    files = select_calibration_files(calibration_files, settings.calibration_images)
    read_calibration_images(files, shape)  # every size checked before the minutes of calibration, not after
    output.parent.mkdir(parents=True, exist_ok=True)
    LOG.info(
        "quantizing %s with %s, calibrating on %d image(s) at %dx%d", source, settings.quantizer, len(files), *shape
    )
    mixed: dict[str, Any] = {}
    if search is None:
        float_nodes, count, notes = quantizer.run(source, output, files, input_name, shape, settings)
    else:
        if quantizer.mixed is None:
            raise UserError(f"the {settings.quantizer} quantizer has no mixed-precision search")
        float_nodes, count, notes, result = quantizer.mixed(source, output, files, input_name, shape, settings, search)
        mixed = search.record() | result.record()
    if count == 0:
        output.unlink(missing_ok=True)
        raise UserError(f"quantization of {source} inserted no quantize node: nothing was quantized")
    return QuantizeRecord(
        settings=settings,
        source_model=str(source),
        source_sha256=file_sha256(source),
        output_model=str(output),
        input_shape=shape,
        calibration_files=[str(path) for path in files],
        float_nodes=float_nodes,
        quantized_node_count=count,
        versions=quantizer.versions(),
        notes=notes,
        mixed=mixed,
    )
