"""ONNX Runtime's int8 conversion: static quantization of the fp32 ONNX model to QDQ (rule quantize_onnx;
with symmetric activations and float biases, rule quantize_tensorrt's model for TensorRT).

Weights are int8 per output channel, activations 8-bit per tensor with ranges measured (min/max) on the
calibration images (deeplabv3_pipeline/optimize/quantize.py: settings, images, the float tail).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.optimize.quantize import BinCalibrationReader, QuantizeSettings, float_tail_nodes

from ...errors import UserError

MIN_QDQ_OPSET = 13


def as_calibration_reader(reader: BinCalibrationReader) -> Any:
    """Wrap ``reader`` in a subclass of onnxruntime's CalibrationDataReader (imported lazily)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

        def __len__(self) -> int:
            return len(reader)

    return Reader()


def quant_types(settings: QuantizeSettings) -> tuple[Any, Any]:
    """(activation QuantType, weight QuantType) of the settings."""
    from onnxruntime.quantization import QuantType

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}  # quantize.QUANT_TYPES, checked before
    return types[settings.activation_type], types[settings.weight_type]


def upgraded_opset(source: Path, scratch: Path, notes: list[str]) -> Path:
    """``source``, or a copy converted to opset 13 when older: per-channel DequantizeLinear (axis) needs 13.

    The export is opset 11 for ATC; the ops of this graph (Conv, Relu, Add, Resize, ArgMax, ...)
    mean the same at 13.
    """
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    if opset >= MIN_QDQ_OPSET:
        return source
    onnx.save(version_converter.convert_version(model, MIN_QDQ_OPSET), str(scratch))
    notes.append(f"converted from opset {opset} to {MIN_QDQ_OPSET} (per-channel QDQ needs it)")
    return scratch


@dataclass(frozen=True)
class Prepared:
    """The fp32 model made ready for quantize_static once (opset 13, ONNX Runtime's pre-processing), its
    calibrated ranges, and the nodes kept float (the tail): each quantization of it starts from these."""

    model: Path
    cache: Path
    float_nodes: list[str]
    notes: list[str]

    @functools.cached_property
    def graph(self) -> Any:
        """The prepared model's graph, read once (a mixed search's every candidate reads its fp32 tensors)."""
        import onnx

        return onnx.load(str(self.model), load_external_data=False).graph


def prepare(
    source: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
    scratch: Path,
) -> Prepared:
    """``source`` prepared in ``scratch`` and calibrated (min/max) on ``files``."""
    import onnx
    from onnxruntime.quantization import quant_pre_process

    notes: list[str] = []
    prepared = upgraded_opset(source, scratch / "opset.onnx", notes)
    if settings.pre_process:
        # Shape inference + ONNX Runtime's graph optimisation, as ORT recommends before quantize_static.
        quant_pre_process(str(prepared), str(scratch / "prepared.onnx"))
        prepared = scratch / "prepared.onnx"
    tail = float_tail_nodes(onnx.load(str(prepared), load_external_data=False).graph) if settings.float_tail else []
    cache = calibrate_min_max(prepared, BinCalibrationReader(files, input_name, shape), scratch)
    return Prepared(prepared, cache, tail, notes)


def quantize_prepared(
    prepared: Prepared, output: Path, settings: QuantizeSettings, float_layers: Sequence[str] = ()
) -> int:
    """The QDQ model of ``prepared`` at ``output`` with its tail and ``float_layers`` (node names) in float,
    each of those reading float tensors (:func:`~.mixed.read_float_inputs`); returns the QuantizeLinear count."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from .mixed import read_float_inputs

    activation_type, weight_type = quant_types(settings)
    quantize_static(
        str(prepared.model),
        str(output),
        None,  # the ranges come from the calibration cache
        quant_format=QuantFormat.QDQ,
        per_channel=settings.per_channel,
        reduce_range=settings.reduce_range,
        activation_type=activation_type,
        weight_type=weight_type,
        nodes_to_exclude=[*prepared.float_nodes, *float_layers],
        calibrate_method=CalibrationMethod.MinMax,
        calibration_cache_path=str(prepared.cache),
        extra_options={
            "ActivationSymmetric": settings.activation_symmetric,
            "WeightSymmetric": True,
            "QuantizeBias": settings.quantize_bias,
        },
    )
    model = onnx.load(str(output))
    if float_layers and read_float_inputs(model, float_layers, prepared.graph):
        onnx.save(model, str(output))
    return sum(node.op_type == "QuantizeLinear" for node in model.graph.node)


def quantize_onnxruntime(
    source: Path,
    output: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
) -> tuple[list[str], int, list[str]]:
    """ONNX Runtime static quantization to QDQ; returns (float nodes, QuantizeLinear count, notes)."""
    if output.suffix != ".onnx":
        raise UserError(f"the onnxruntime quantizer writes an .onnx model, not {output.name}")
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as scratch:
        prepared = prepare(source, files, input_name, shape, settings, Path(scratch))
        quantized = Path(scratch) / "quantized.onnx"
        count = quantize_prepared(prepared, quantized, settings)
        quantized.replace(output)
    return prepared.float_nodes, count, prepared.notes


def calibrate_min_max(model: Path, reader: BinCalibrationReader, scratch: Path) -> Path:
    """Min/max range of every float tensor over the calibration images, saved as onnxruntime's calibration cache.

    This is what quantize_static does itself, with one change: its calibration session runs the
    augmented graph (a ReduceMin/ReduceMax pair on every tensor) in the default execution order,
    which keeps nearly every activation alive at once: over 20 GB at 1024x2048. The priority-based
    order frees each tensor once reduced, and the session needs what plain inference needs.
    """
    import onnxruntime
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(
        model, None, augmented_model_path=str(scratch / "augmented.onnx"), calibrate_method=CalibrationMethod.MinMax
    )
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the calibrator's own
    options.execution_order = onnxruntime.ExecutionOrder.PRIORITY_BASED
    calibrator.infer_session = onnxruntime.InferenceSession(
        calibrator.augmented_model_path, options, providers=["CPUExecutionProvider"]
    )
    calibrator.collect_data(as_calibration_reader(reader))
    cache = scratch / "calibration_cache.json"
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
