#!/usr/bin/env python3
"""Predictions + Cityscapes trainIds labels -> mIoU, as the guide's deeplabv3_torch_postprocess.py.

    python scripts/evaluate.py --output_path result/bs1 --gt_path /data/cityscapes/gtFine/val \\
        --result_path result --out_suffix _leftImg8bit_0.bin

Predictions are ``*{out_suffix}`` files (raw int64 1x1xHxW) found recursively under
``--output_path``, so a real ais_bench output folder works as it is (its summary json files are
not predictions and are ignored). Labels are ``*_gtFine_labelTrainIds.png`` found recursively
under the ``--gt_path`` folders. ``--predictions``/``--labels`` take exact files instead (what the
workflow passes: nothing else is read, whatever else the folders hold). The metric is
mmsegmentation's: intersection and union per class summed over the set, 255 ignored,
mIoU = nanmean(IoU) * 100. Writes ``<result_path>.json``
(everything) and ``<result_path>.txt`` (the guide's ``aAcc: x`` / ``mIoU: y``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.data.cityscapes import TRAIN_IDS_SUFFIX, frame_files
from deeplabv3_pipeline.errors import run_cli
from deeplabv3_pipeline.evaluation.evaluate import pair_predictions_with_labels, result_paths, result_record
from deeplabv3_pipeline.io.binio import write_json, write_text
from deeplabv3_pipeline.report.headline import headline


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    predictions = parser.add_mutually_exclusive_group(required=True)
    predictions.add_argument("--output_path", type=Path, help="folder of predictions (searched recursively)")
    predictions.add_argument("--predictions", type=Path, nargs="+", help="prediction files")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--gt_path", type=Path, nargs="+", help="folder(s) of *_gtFine_labelTrainIds.png")
    labels.add_argument("--labels", type=Path, nargs="+", help="trainIds label files")
    parser.add_argument("--result_path", type=Path, default=Path("result"), help="writes <result_path>.json and .txt")
    parser.add_argument("--out_suffix", default="_leftImg8bit_0.bin")
    parser.add_argument(
        "--shape", type=int, nargs=2, metavar=("H", "W"), help="the images' size: a label of another is an error"
    )
    parser.add_argument("--summary", type=Path, help="inference summary json, for the speed figures")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--model-name", default=None, help="the model's name (model.name): the cell's model")
    parser.add_argument("--variant", default=None, help="backend-precision[-winograd]: the cell's variant")
    parser.add_argument("--model-file", type=Path, help="model that made the predictions, for its sha256")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint the model was made from, for its sha256")
    parser.add_argument("--dataset", help="what the frames are (dataset root, split, ...), as JSON")
    parser.add_argument("--run-config", default=None, help="the workflow config used, as JSON")
    parser.add_argument("--synthetic", default=None, help="say what is synthetic (demo data or checkpoint)")
    parser.add_argument(
        "--model-record",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="JSON records of the steps that made the model, recorded under KEY: quantization (int8 settings, "
        "calibration, agreement), winograd (rewritten sites, agreement), fp16 (the fp16 conversion), "
        "engine (TensorRT build settings)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    predictions = frame_files(args.predictions or [args.output_path], args.out_suffix, "prediction")
    labels = frame_files(args.labels or args.gt_path, TRAIN_IDS_SUFFIX, "label")
    result = result_record(
        pair_predictions_with_labels(predictions, labels),
        tuple(args.shape) if args.shape else None,
        summary_path=args.summary,
        model_file=args.model_file,
        checkpoint=args.checkpoint,
        cell={"model": args.model_name, "variant": args.variant, "backend": args.backend},
        dataset=json.loads(args.dataset) if args.dataset else None,
        run_config=json.loads(args.run_config) if args.run_config else None,
        synthetic=args.synthetic,
        model_records=args.model_record,
    )
    json_path, text_path = result_paths(args.result_path)
    write_json(json_path, result)
    write_text(text_path, f"aAcc: {result['aAcc']}\nmIoU: {result['mIoU']}\n")
    print(headline(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
