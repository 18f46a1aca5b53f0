"""A converted model checked against its source (int8 against fp32, the Winograd rewrite against the
direct graph): pixel agreement on a few preprocessed images, both run by one runtime, and the flags of
the scripts that do it (scripts/quantize_onnx.py, scripts/winograd_onnx.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.evaluation.metrics import pixel_agreement


def add_agreement_arguments(parser: argparse.ArgumentParser, source: str, check_data: str) -> None:
    """``--check-images`` (default 1; 0: no check), ``--check-data`` and ``--min-agreement``; ``source``
    names the model the output is compared with, ``check_data`` what ``--check-data`` defaults to."""
    parser.add_argument(
        "--check-images",
        type=int,
        default=1,
        help=f"images on which to compare the output with {source} pixel by pixel (0: no check; default 1)",
    )
    parser.add_argument("--check-data", type=Path, nargs="+", help=f"bins for the check ({check_data})")
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.0,
        help=f"fail (and remove the output) when the mean pixel agreement with {source} is below this fraction",
    )


def check_agreement_arguments(args: argparse.Namespace) -> None:
    if args.check_images < 0:
        raise UserError(f"--check-images must be 0 or more, got {args.check_images}")


def agreement_check(
    reference_model: Path, other_model: Path, backend: str, files: Sequence[Path], shape: tuple[int, int]
) -> dict[str, Any]:
    """Pixel agreement of ``other_model`` (int8, Winograd) with ``reference_model`` on ``files``, both run
    by ``backend``, one model loaded at a time (the peak memory is the larger model's, not the sum)."""
    from deeplabv3_pipeline.backends import open_backend
    from deeplabv3_pipeline.optimize.quantize import read_calibration_images

    images = read_calibration_images(files, shape)
    predictions = []
    for model in (reference_model, other_model):
        runner = open_backend(backend, model)
        predictions.append([runner.run(image) for image in images])
        del runner
    per_image = {
        Path(path).name: pixel_agreement(reference, other)
        for path, reference, other in zip(files, *predictions, strict=True)
    }
    values = list(per_image.values())
    return {
        "runtime": backend,
        "per_image": per_image,
        "mean": float(np.mean(values)) if values else None,
        "min": float(np.min(values)) if values else None,
    }


def enforce_min_agreement(
    agreement: Mapping[str, Any] | None,
    minimum: float,
    outputs: Sequence[Path],
    what: str,
    record: Path,
    advice: str = "",
) -> None:
    """The gate of ``--min-agreement``: below it the outputs are removed (the record stays, to look into)
    and a UserError says ``what`` agreed how much; no check (``agreement`` None or empty) passes."""
    if not agreement or agreement["mean"] >= minimum:
        return
    for path in outputs:
        path.unlink(missing_ok=True)
    raise UserError(
        f"{what} on {agreement['mean']:.4%} of pixels, below --min-agreement {minimum:.4%}; "
        f"{' and '.join(map(str, outputs))} removed (record: {record}){'. ' + advice if advice else ''}"
    )
