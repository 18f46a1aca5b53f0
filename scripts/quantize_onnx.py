#!/usr/bin/env python3
"""fp32 ONNX -> int8 model by post-training static quantization, calibrated on real preprocessed images.

    python scripts/quantize_onnx.py results/models/deeplabv3/deeplabv3_sim_bs1.onnx \\
        results/models/deeplabv3_sim_bs1_int8.onnx --calibration-data results/prep_dataset/demo/val \\
        --calibration-images 8

``--quantizer onnxruntime`` (default): ONNX Runtime quantize_static, QDQ format, per-channel int8
weights, uint8 activations with min/max ranges; the output is an ``.onnx`` with the same interface
(input ``input`` float32 1x3xHxW, output ``output`` int64 1x1xHxW) that ONNX Runtime and OpenVINO run.
``--quantizer openvino``: OpenVINO NNCF post-training quantization; the output is IR (``.xml`` + ``.bin``).
The classifier (last Conv), the final Resize and the ArgMax stay float.

Calibration reads N ``.bin`` files (spread evenly over the sorted list) made by preprocess.py:
real images, never random data. A JSON of the settings, the files used and a pixel-agreement
check against the fp32 model (on ``--check-images`` images not used for calibration, when there
are any) is written beside the output (``<output stem>.json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.evaluation.agreement import (
    add_agreement_arguments,
    agreement_check,
    check_agreement_arguments,
    enforce_min_agreement,
)
from deeplabv3_pipeline.io.binio import write_atomic
from deeplabv3_pipeline.optimize.mixed import add_mixed_arguments, mixed_search
from deeplabv3_pipeline.optimize.quantize import (
    DEFAULT_CALIBRATION_IMAGES,
    QUANT_TYPES,
    QuantizeSettings,
    agreement_files,
    calibration_bins,
    model_files,
    model_input,
    quantize_model,
    quantizers,
    select_calibration_files,
)

LOG = logging.getLogger("quantize_onnx")


def settings_from_args(args: argparse.Namespace) -> QuantizeSettings:
    return QuantizeSettings(
        quantizer=args.quantizer,
        calibration_images=args.calibration_images,
        activation_type=args.activation_type,
        activation_symmetric=args.symmetric_activations,
        quantize_bias=not args.float_bias,
        reduce_range=args.reduce_range,
        float_tail=not args.quantize_tail,
        pre_process=not args.no_pre_process,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="fp32 ONNX model with a fixed input shape (deeplabv3_sim_bs1.onnx)")
    parser.add_argument(
        "output", type=Path, help="int8 model: .onnx (onnxruntime quantizer) or .xml (openvino quantizer)"
    )
    parser.add_argument(
        "--calibration-data",
        type=Path,
        nargs="+",
        required=True,
        help="preprocessed .bin files or folders of them (results/prep_dataset/demo/val)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help=f"how many images to calibrate on, spread over the sorted list (default {DEFAULT_CALIBRATION_IMAGES})",
    )
    parser.add_argument("--quantizer", choices=tuple(quantizers()), default="onnxruntime")
    parser.add_argument("--activation-type", choices=QUANT_TYPES, default="uint8", help="onnxruntime quantizer")
    parser.add_argument(
        "--symmetric-activations",
        action="store_true",
        help="zero point 0 for activations too, as TensorRT needs (with --activation-type int8; onnxruntime quantizer)",
    )
    parser.add_argument(
        "--float-bias",
        action="store_true",
        help="keep Conv biases float (TensorRT takes only int8 into DequantizeLinear; onnxruntime quantizer)",
    )
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (onnxruntime quantizer)")
    parser.add_argument("--quantize-tail", action="store_true", help="quantize the classifier too (not advised)")
    parser.add_argument("--no-pre-process", action="store_true", help="skip onnxruntime's quant_pre_process")
    add_agreement_arguments(parser, "the fp32 model", "default: bins held out from calibration")
    parser.add_argument("--record", type=Path, help="settings and agreement JSON (default: <output stem>.json)")
    add_mixed_arguments(
        parser,
        "onnxruntime searches nodes_to_exclude in the order of the per-layer comparison, openvino runs NNCF's "
        "quantize_with_accuracy_control",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_agreement_arguments(args)
    candidates = calibration_bins(args.calibration_data)
    calibration = select_calibration_files(candidates, args.calibration_images)
    check = agreement_files(candidates, calibration, args.check_data, args.check_images)
    if set(check) & set(calibration) and (args.target_agreement is not None or args.target_miou_drop is not None):
        raise UserError(
            "a mixed-precision target is judged on check images not used for calibration: give --check-data, "
            "or fewer --calibration-images than there are bins"
        )
    search = mixed_search(args, check, model_input(args.model)[1], args.quantizer)
    record = quantize_model(args.model, args.output, calibration, settings_from_args(args), search)
    LOG.info("wrote %s (%d quantize nodes; float: %s)", args.output, record.quantized_node_count, record.float_nodes)
    if record.mixed:
        LOG.info(
            "mixed: %d layers in float (%s), pixel agreement %.4f; %d models evaluated in %.1f s",
            len(record.mixed["float_layers"]),
            ", ".join(record.mixed["float_layers"]) or "none",
            record.mixed["figures"]["pixel_agreement"],
            record.mixed["evaluations"],
            record.mixed["seconds"],
        )
    if check:
        record.agreement = agreement_check(args.model, args.output, args.quantizer, check, record.input_shape)
        record.agreement["held_out"] = not set(map(Path, check)) & set(calibration)
        LOG.info("int8 vs fp32 pixel agreement: mean %.4f on %d image(s)", record.agreement["mean"], len(check))
    path = args.record or args.output.with_suffix(".json")
    write_atomic(path, record.to_json().encode())
    enforce_min_agreement(record.agreement, args.min_agreement, model_files(args.output), "int8 agrees with fp32", path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
