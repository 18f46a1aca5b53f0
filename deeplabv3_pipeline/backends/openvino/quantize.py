"""OpenVINO's int8 conversion: NNCF post-training quantization of the fp32 ONNX model to OpenVINO IR
(rule quantize_openvino), on the same calibration images as ONNX Runtime's (deeplabv3_pipeline/optimize/quantize.py).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.optimize.mixed import (
    MixedSearch,
    SearchResult,
    Trial,
    best_reached,
    describe,
)
from deeplabv3_pipeline.optimize.quantize import QuantizeSettings, read_calibration_images

from ...errors import UserError

PLAIN_NOTES = (
    "NNCF preset PERFORMANCE (symmetric weights and activations); per-channel weights, as NNCF does for Conv",
)


def quantize_openvino(
    source: Path,
    output: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
) -> tuple[list[str], int, list[str]]:
    """OpenVINO NNCF post-training quantization to IR; returns (float nodes, FakeQuantize count, notes)."""
    job = NncfJob.read(source, output, files, shape, settings)
    quantized = job.quantize()
    save_ir(quantized, output)
    return job.float_nodes(), fake_quantize_count(quantized), list(PLAIN_NOTES)


@dataclass(frozen=True)
class NncfJob:
    """What both NNCF quantizations start from: the fp32 model, the calibration images, the ignored scope
    (node names, op types)."""

    model: Any
    images: list
    names: list[str]
    types: list[str]

    @classmethod
    def read(
        cls, source: Path, output: Path, files: Sequence[Path], shape: tuple[int, int], settings: QuantizeSettings
    ) -> NncfJob:
        try:
            import nncf  # noqa: F401 (checked here: the error names the package)
        except ImportError as error:
            raise UserError("the openvino quantizer needs NNCF: pip install nncf (see requirements.txt)") from error
        import openvino as ov

        if output.suffix != ".xml":
            raise UserError(f"the openvino quantizer writes OpenVINO IR (.xml + .bin), not {output.name}")
        model = ov.Core().read_model(str(source))
        names, types = ignored_scope(model, settings)
        return cls(model, read_calibration_images(files, shape), names, types)

    def quantize(self) -> Any:
        """NNCF's plain post-training quantization (preset PERFORMANCE) of the model."""
        import nncf

        return nncf.quantize(
            self.model,
            nncf.Dataset(self.images),
            subset_size=len(self.images),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            ignored_scope=nncf.IgnoredScope(names=self.names, types=self.types),
        )

    def float_nodes(self, reverted: Sequence[str] = ()) -> list[str]:
        """The record's float nodes: the ignored scope, then what accuracy control reverted."""
        return [*self.names, *(f"every {kind}" for kind in self.types), *reverted]


def fake_quantize_count(model: Any) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())


def ignored_scope(model: Any, settings: QuantizeSettings) -> tuple[list[str], list[str]]:
    """(node names, op types) NNCF leaves in float: the classifier (last Convolution), Interpolate and TopK."""
    if not settings.float_tail:
        return [], []
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return convolutions[-1:], ["Interpolate", "TopK"]


def save_ir(model: Any, output: Path) -> None:
    """``model`` as IR at ``output`` (``.xml``) and its ``.bin``, each appearing complete."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as scratch:
        staged = Path(scratch) / output.name
        ov.save_model(model, str(staged))
        staged.with_suffix(".bin").replace(output.with_suffix(".bin"))
        staged.replace(output)  # the .xml last: it is the file Snakemake and the backends look for


def quantize_mixed(
    source: Path,
    output: Path,
    files: Sequence[Path],
    input_name: str,
    shape: tuple[int, int],
    settings: QuantizeSettings,
    search: MixedSearch,
) -> tuple[list[str], int, list[str], SearchResult]:
    """NNCF's ``quantize_with_accuracy_control``: the int8 IR whose quantizers NNCF reverted to float, those
    that cost the most of this workflow's metric first, until the target holds on the check frames. Its
    metric is :meth:`Target.margin` (per frame: the pixel agreement, for NNCF's ranking) and its
    ``max_drop`` the fp32 model's margin, so a model within ``max_drop`` is one that meets the target;
    ``max_num_iterations`` is ``bounds.max_evaluations``. Returns (float nodes, FakeQuantize count, notes,
    the search: the layers NNCF left in float, the figures of the IR written, NNCF's evaluations)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    job = NncfJob.read(source, output, files, shape, settings)
    check, target, bounds = search.check, search.target, search.bounds
    trials: list[Trial] = []

    def validate(compiled: Any, frames: Any) -> tuple[float, list[float]]:
        started = time.perf_counter()
        frames = list(frames)
        predictions = [compiled(image)[0] for image in frames]
        figures = check.figures_of(frames, predictions)
        trials.append(Trial((), figures, target.met(figures), time.perf_counter() - started))
        return target.margin(figures), check.agreements(frames, predictions)  # (per frame: NNCF's ranking)

    start = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        job.model,
        nncf.Dataset(job.images),
        nncf.Dataset(check.images),
        validate,
        max_drop=target.reference_margin(),
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(job.images),
        ignored_scope=nncf.IgnoredScope(names=job.names, types=job.types),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=bounds.max_evaluations
        ),
    )
    seconds = time.perf_counter() - start
    # what NNCF reverted: the ops its plain quantization quantizes that this model does not
    plain = job.quantize()
    still = set(quantized_ops(quantized))
    float_layers = tuple(name for name in quantized_ops(plain) if name not in still)
    save_ir(quantized, output)
    figures = check.judge(output, "int8")
    result = SearchResult(float_layers, figures, trials, seconds, ["NNCF quantize_with_accuracy_control"])
    if not target.met(figures) or len(float_layers) > bounds.max_float_layers:
        output.unlink()
        output.with_suffix(".bin").unlink()
        missed = target.shortfalls(figures) or [f"{len(float_layers)} layers in float > {bounds.max_float_layers}"]
        raise UserError(
            f"int8: NNCF's accuracy control did not meet the target ({describe(target)}) within "
            f"{bounds.max_evaluations} iterations and {bounds.max_float_layers} float layers (int8.search): "
            f"{'; '.join(missed)}; {best_reached([Trial(float_layers, figures, False, 0.0)], target)}"
        )
    notes = [*PLAIN_NOTES, "NNCF quantize_with_accuracy_control with this workflow's metric (Target.margin)"]
    return job.float_nodes(float_layers), fake_quantize_count(quantized), notes, result


def quantized_ops(model: Any) -> list[str]:
    """The ops of an NNCF model that compute floats from a FakeQuantize's output (quantized), by their ONNX node names
    (OpenVINO splits an ONNX Conv with a bias into ``<name>/WithoutBiases`` and an Add), in order."""
    names = [
        op.get_friendly_name().removesuffix("/WithoutBiases")
        for op in model.get_ordered_ops()
        if op.get_type_name() != "FakeQuantize"
        and op.get_output_size() > 0
        and op.get_output_element_type(0).is_real()  # (a ShapeOf of a quantized tensor is no layer)
        and any(port.get_source_output().get_node().get_type_name() == "FakeQuantize" for port in op.inputs())
    ]
    return list(dict.fromkeys(names))


def versions() -> dict[str, str]:
    import nncf
    import onnx
    import openvino

    return {"onnx": onnx.__version__, "openvino": openvino.__version__, "nncf": nncf.__version__}
