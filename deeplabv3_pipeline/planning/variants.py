"""Variants: backend x precision [x the Winograd graph, or mixed precision], named
``backend-precision[-winograd|-mixed]`` (the matrix's and the benchmark's vocabulary). Made from the
backend registry: a backend's subpackage adds its variants. The schema lists no backend or variant
names; :func:`check_config_names` checks the config's against the registry, naming the valid ones.

Which model a variant runs is its backend's (``model_steps``); for ``-winograd``, rule
winograd_onnx's rewrite of the simplified ONNX; for ``-mixed``, the backend's ``mixed_model_steps`` (the
fewest layers kept in float for the config's target). The steps' paths keep ``{model}``: the plan fills in
the model's name (deeplabv3_pipeline/planning/plan.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deeplabv3_pipeline.backends import REGISTRY
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.optimize.mixed import Bounds, Target
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step


@dataclass(frozen=True)
class Variant:
    backend: str
    precision: str
    winograd: bool = False
    mixed: bool = False

    @property
    def name(self) -> str:
        suffix = "-winograd" if self.winograd else "-mixed" if self.mixed else ""
        return f"{self.backend}-{self.precision}{suffix}"

    def model_steps(self, config: Mapping[str, Any]) -> list[Step]:
        """The steps that make the model this variant runs, in order (none: it runs the checkpoint)."""
        if self.winograd:
            return [*artifacts.ONNX_STEPS, artifacts.WINOGRAD_ONNX]
        if self.mixed:
            return REGISTRY[self.backend].mixed_steps(self.precision, config)
        return REGISTRY[self.backend].model_steps(self.precision, config)


def _all_variants() -> dict[str, Variant]:
    variants = {}
    for backend, spec in REGISTRY.items():
        for precision in spec.precisions:
            variants[Variant(backend, precision).name] = Variant(backend, precision)
        if spec.winograd:
            variants[Variant(backend, "fp32", True).name] = Variant(backend, "fp32", True)
        for precision in spec.mixed_precisions:
            variants[Variant(backend, precision, mixed=True).name] = Variant(backend, precision, mixed=True)
    return variants


VARIANTS: dict[str, Variant] = _all_variants()
# What the CPU benchmark times (rules/benchmark.smk): the variants of the backends that run on this CPU.
CPU_VARIANTS: tuple[str, ...] = tuple(
    name for name, variant in VARIANTS.items() if REGISTRY[variant.backend].runs_on_cpu(variant.precision)
)
# Timed by name only: ONNX Runtime runs the Winograd graph slower than the direct one; a mixed variant's
# model is a search of several quantizations (minutes at 1024x2048).
ON_REQUEST = ("onnxruntime-fp32-winograd", *(name for name in CPU_VARIANTS if VARIANTS[name].mixed))


def get_variant(name: str, where: str = "variant") -> Variant:
    """The variant called ``name``, or a :class:`UserError` naming ``where`` it was asked and the valid ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise UserError(f"{where}: unknown variant {name!r}: choose from {', '.join(VARIANTS)}") from None


def check_mixed_settings(config: Mapping[str, Any]) -> None:
    """Where a run asks for a ``-mixed`` variant (matrix, benchmark, debug), its precision's ``target``
    (``int8.target``, ``fp16.target``) can be judged and its ``search`` bounds it; a :class:`UserError`
    names the key."""
    asked = [*config["matrix"]["variants"], *config["benchmark"]["variants"], *config["debug"]["variants"]]
    mixed = {VARIANTS[name].precision for name in asked if name in VARIANTS and VARIANTS[name].mixed}
    for section in sorted(mixed):  # (int8, fp16: the section of the precision)
        target, search = config[section]["target"], config[section]["search"]
        Target(**target).check({name: f"{section}.target.{name}" for name in target}, labelled=True)
        Bounds(**search).check({name: f"{section}.search.{name}" for name in search})


def check_mixed_frames(config: Mapping[str, Any], frames: int) -> None:
    """An int8 ``-mixed`` variant is judged on check frames calibration did not see: a :class:`UserError`
    at start where ``int8.calibration_images`` leaves none of the ``frames``."""
    asked = [*config["matrix"]["variants"], *config["benchmark"]["variants"], *config["debug"]["variants"]]
    int8 = config["int8"]
    mixed = any(name in VARIANTS and VARIANTS[name].mixed and VARIANTS[name].precision == "int8" for name in asked)
    if mixed and (int8["check_images"] < 1 or int8["calibration_images"] >= frames):
        raise UserError(
            f"int8.calibration_images ({int8['calibration_images']}) and int8.check_images "
            f"({int8['check_images']}) leave no check image of the {frames} frames for the int8 -mixed "
            f"variants' target: set int8.calibration_images below {frames} and int8.check_images to 1 or more"
        )


def check_config_names(config: Mapping[str, Any]) -> None:
    """``backend``, ``matrix.reference`` and the benchmark's variants are registered names (the matrix's
    variants are checked as the plan reads them), and a mixed variant's target can be judged; a
    :class:`UserError` names the key and the valid names."""
    if config["backend"] not in REGISTRY:
        raise UserError(f"backend: unknown backend {config['backend']!r}: choose one of {', '.join(REGISTRY)}")
    get_variant(config["matrix"]["reference"], "matrix.reference")
    benchmark = config["benchmark"]
    for where, names in (
        ("benchmark.variants", benchmark["variants"]),
        ("benchmark.reference", [benchmark["reference"]]),
    ):
        for name in names:
            if name not in CPU_VARIANTS:
                raise UserError(
                    f"{where}: {name!r} is not a variant this workflow times on the CPU: choose from "
                    f"{', '.join(CPU_VARIANTS)}"
                )
    check_mixed_settings(config)
    check_precisions(config)


def check_precisions(config: Mapping[str, Any]) -> None:
    """Every variant the run asks for can run its precision where the config puts it (fp16 of PyTorch needs
    ``pytorch.device: cuda``; the debug variants' PyTorch runs on the CPU): a :class:`UserError` naming the
    key that asks for it and the fix, in a dry run too."""
    asked = [
        ("backend/precision", Variant(config["backend"], config["precision"]).name, False),
        *(("matrix.variants", name, False) for name in config["matrix"]["variants"]),
        ("matrix.reference", config["matrix"]["reference"], False),
        *(("debug.variants", name, True) for name in config["debug"]["variants"]),
    ]
    for where, name, on_cpu in asked:
        variant = VARIANTS.get(name)
        if variant is None:
            continue  # (an unknown name is reported where it is read, naming the valid ones)
        spec = REGISTRY[variant.backend]
        settings = spec.cpu_config(config) if on_cpu else config
        for problem in spec.precision_problems(variant.precision, settings):
            raise UserError(f"{where}: {name}: {problem}")


def configured_variant(backend: str, precision: str, winograd: bool) -> Variant:
    """The variant of config ``backend``, ``precision`` and ``winograd.enabled``: ``-winograd`` where
    the backend has that variant at this precision (fp32 of an ONNX-graph backend), else the plain one.
    A precision the backend lacks is a :class:`UserError` naming the valid variants of the backend."""
    spec = REGISTRY[backend]
    if precision not in spec.precisions:
        names = [name for name, variant in VARIANTS.items() if variant.backend == backend]
        raise UserError(
            f"precision: backend {backend} has no precision {precision}: it runs {', '.join(spec.precisions)} "
            f"(variants {', '.join(names)})"
        )
    candidate = Variant(backend, precision, winograd)
    return candidate if candidate.name in VARIANTS else Variant(backend, precision)


def benchmark_variants(chosen: list[str], reference: str, bf16: bool) -> list[str]:
    """The variants the CPU benchmark times: ``chosen`` (config benchmark.variants), or, when empty,
    every CPU variant but those timed on request (bf16 ones only where the CPU has native BF16); the
    reference first."""
    default = [name for name in CPU_VARIANTS if name not in ON_REQUEST and (VARIANTS[name].precision != "bf16" or bf16)]
    return list(dict.fromkeys([reference, *(chosen or default)]))
