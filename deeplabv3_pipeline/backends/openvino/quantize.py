"""OpenVINO's int8 conversion: NNCF post-training quantization of the fp32 ONNX model to OpenVINO IR
(rule quantize_openvino), on the same calibration images as ONNX Runtime's (deeplabv3_pipeline/optimize/quantize.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from deeplabv3_pipeline.optimize.quantize import QuantizeSettings, read_calibration_images

from ...errors import UserError


def quantize_openvino(
    source: Path,
    output: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
) -> tuple[list[str], int, list[str]]:
    """OpenVINO NNCF post-training quantization to IR; returns (float nodes, FakeQuantize count, notes)."""
    try:
        import nncf
    except ImportError as error:
        raise UserError("the openvino quantizer needs NNCF: pip install nncf (see requirements.txt)") from error
    import openvino as ov

    if output.suffix != ".xml":
        raise UserError(f"the openvino quantizer writes OpenVINO IR (.xml + .bin), not {output.name}")
    model = ov.Core().read_model(str(source))
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    names = convolutions[-1:] if settings.float_tail else []
    types = ["Interpolate", "TopK"] if settings.float_tail else []
    images = read_calibration_images(files, shape)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(images),
        subset_size=len(images),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        ignored_scope=nncf.IgnoredScope(names=names, types=types),
    )
    count = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops())
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as scratch:
        staged = Path(scratch) / output.name
        ov.save_model(quantized, str(staged))
        staged.with_suffix(".bin").replace(output.with_suffix(".bin"))
        staged.replace(output)  # the .xml last: it is the file Snakemake and the backends look for
    notes = ["NNCF preset PERFORMANCE (symmetric weights and activations); per-channel weights, as NNCF does for Conv"]
    return [*names, *(f"every {kind}" for kind in types)], count, notes


def versions() -> dict[str, str]:
    import nncf
    import onnx
    import openvino

    return {"onnx": onnx.__version__, "openvino": openvino.__version__, "nncf": nncf.__version__}
