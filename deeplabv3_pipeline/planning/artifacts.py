"""Where every kind of job writes: its main artifact, its log and its Snakemake benchmark file.

Written once, here, and read by the rules (``output:``, ``log:``, ``benchmark:``), by the backend
modules (which steps make the model a backend runs) and by the report (which benchmark files a run
has). Paths may hold ``{wildcards}``; :meth:`Step.format` fills some and leaves the others for Snakemake.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar


class _KeepMissing(dict):
    """``str.format_map`` mapping that leaves unknown ``{fields}`` as they are (Snakemake's wildcards)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(pattern: str, **wildcards: object) -> str:
    """``pattern`` with the given wildcards filled in and the others kept."""
    return pattern.format_map(_KeepMissing(wildcards))


@dataclass(frozen=True)
class Step:
    """One kind of job. ``rule``: its rule's name; ``key``: its place under results/logs and
    results/benchmarks; ``output``: its main artifact ("" where the rule's outputs are many);
    ``record``: for a model-making step that writes a record beside its model (:func:`record_path`),
    the key under which result.json keeps it."""

    rule: str
    key: str
    output: str = ""
    record: str = ""

    @property
    def log(self) -> str:
        return f"results/logs/{self.key}.log"

    @property
    def benchmark(self) -> str:
        return f"results/benchmarks/{self.key}.tsv"

    def format(self, **wildcards: object) -> Step:
        return replace(self, key=fill(self.key, **wildcards), output=fill(self.output, **wildcards))


MODELS = "results/models/{model}"  # one folder per model name: no two models share a file

# Inputs
# (keyed by the data, as the files they make: another size or split never overwrites their logs)
DEMO_DATASET = Step("demo_dataset", "demo_dataset/{data}")
# a random checkpoint in the real format, per model (its own config's architecture)
DEMO_CHECKPOINT = Step("demo_checkpoint", "demo_checkpoint/{model}", "results/demo/checkpoints/{model}.pth")
# one trained by mmseg's loop on other synthetic frames (config demo.checkpoint: trained)
TRAIN_DEMO_CHECKPOINT = Step(
    "train_demo_checkpoint", "train_demo_checkpoint/{model}", "results/demo/checkpoints/trained/{model}.pth"
)
FETCH_CHECKPOINT = Step("fetch_checkpoint", "fetch_checkpoint/{name}")
LABELS = Step("labels", "labels/{data}/shard{shard}")
PREPROCESS = Step("preprocess", "preprocess/{data}/shard{shard}")

# Models: the guide's names ({model}.onnx, {model}_sim_bs1.onnx, {model}_bs1_{soc}.om) per model.
EXPORT_ONNX = Step("export_onnx", "export_onnx/{model}", f"{MODELS}/{{model}}.onnx")
VERIFY_ONNX = Step("verify_onnx", "verify_onnx/{model}", f"{MODELS}/{{model}}_verify.json")
SIMPLIFY_ONNX = Step("simplify_onnx", "simplify_onnx/{model}", f"{MODELS}/{{model}}_sim_bs1.onnx")
# The fp32 ONNX every ONNX-based backend starts from.
ONNX_STEPS = (EXPORT_ONNX, SIMPLIFY_ONNX)
WINOGRAD_ONNX = Step("winograd_onnx", "winograd_onnx/{model}", f"{MODELS}/{{model}}_sim_bs1_winograd.onnx", "winograd")
# int8: ONNX Runtime's QDQ model (uint8 activations), OpenVINO's NNCF IR, and TensorRT's QDQ model
# (symmetric int8 everywhere: zero points 0, the only kind TensorRT takes).
QUANTIZE_ONNX = Step("quantize_onnx", "quantize_onnx/{model}", f"{MODELS}/{{model}}_sim_bs1_int8.onnx", "quantization")
QUANTIZE_OPENVINO = Step(
    "quantize_openvino", "quantize_openvino/{model}", f"{MODELS}/{{model}}_sim_bs1_int8_ov.xml", "quantization"
)
QUANTIZE_TENSORRT = Step(
    "quantize_tensorrt", "quantize_tensorrt/{model}", f"{MODELS}/{{model}}_sim_bs1_int8_sym.onnx", "quantization"
)
# mixed int8 (variants <backend>-int8-mixed): the fewest layers kept in float for int8.target
# (deeplabv3_pipeline/optimize/mixed.py), each its own file: a mixed cell never shares one with the plain cell
QUANTIZE_ONNX_MIXED = Step(
    "quantize_onnx_mixed", "quantize_onnx_mixed/{model}", f"{MODELS}/{{model}}_sim_bs1_int8_mixed.onnx", "quantization"
)
QUANTIZE_OPENVINO_MIXED = Step(
    "quantize_openvino_mixed",
    "quantize_openvino_mixed/{model}",
    f"{MODELS}/{{model}}_sim_bs1_int8_mixed_ov.xml",
    "quantization",
)
QUANTIZE_TENSORRT_MIXED = Step(
    "quantize_tensorrt_mixed",
    "quantize_tensorrt_mixed/{model}",
    f"{MODELS}/{{model}}_sim_bs1_int8_sym_mixed.onnx",
    "quantization",
)
# fp16: the fp32 model with float16 weights and activations (TensorRT 11 computes in the model's types).
CONVERT_FP16 = Step("convert_fp16", "convert_fp16/{model}", f"{MODELS}/{{model}}_sim_bs1_fp16.onnx", "fp16")
# mixed fp16 (tensorrt-fp16-mixed, ascend-fp16-mixed): the fewest nodes kept fp32 for fp16.target, and
# those nodes as ATC's --keep_dtype file (one name a line)
CONVERT_FP16_MIXED = Step(
    "convert_fp16_mixed", "convert_fp16_mixed/{model}", f"{MODELS}/{{model}}_sim_bs1_fp16_mixed.onnx", "fp16"
)
KEEP_DTYPE = f"{MODELS}/{{model}}_sim_bs1_fp16_mixed_keep_dtype.cfg"
# the guide's file name, in a folder per precision (ATC's fp16 default and fp32 are two models)
ATC = Step("atc", "atc/{model}/{precision}/{soc}", f"{MODELS}/{{precision}}/{{model}}_bs1_{{soc}}.om")
BUILD_ENGINE = Step(
    "build_engine", "build_engine/{model}/{precision}", f"{MODELS}/{{model}}_bs1_{{precision}}.engine", "engine"
)
BUILD_ENGINE_MIXED = Step(
    "build_engine_mixed",
    "build_engine_mixed/{model}/{precision}",
    f"{MODELS}/{{model}}_bs1_{{precision}}_mixed.engine",
    "engine",
)
# ATC's .om of a mixed fp16 model: the fp32 model with the --keep_dtype nodes fp32, the rest ATC's fp16
MIXED_PRECISION_FOLDER = "{precision}-mixed"

# A cell's inference and its result: keyed by data x model x variant (deeplabv3_pipeline/planning/plan.py)
INFER = Step("infer", "infer/{data}/{model}/{variant}/shard{shard}")
GATHER_SUMMARIES = Step("gather_summaries", "infer/{data}/{model}/{variant}/gather_summaries")
EVALUATE = Step("evaluate", "evaluate/{data}/{model}/{variant}")
# the per-layer comparison of a cell's model with its reference cell's (config debug; results/debug/)
COMPARE_LAYERS = Step(
    "compare_layers", "compare_layers/{data}/{model}/{variant}", "results/debug/{data}/{model}/{variant}/layers.json"
)
RESULT = Step("result", "result")
MATRIX = Step("matrix", "matrix", "results/matrix.json")
ZOO_SUPPORT = Step("zoo_support", "zoo_support", "results/zoo/support.json")
REPORT_FIGURES = Step("report_figures", "report_figures/{data}/{model}/{variant}")  # keyed as the cell

# The speed benchmark (rules/benchmark.smk): the configured model's variants on this CPU
BENCHMARK_MACHINE = Step("benchmark_machine", "benchmark/machine", "results/benchmark/machine.json")
BENCHMARK_VARIANT = Step("benchmark_variant", "benchmark/{model}/{variant}", "results/benchmark/{model}/{variant}.json")
BENCHMARK = Step("benchmark", "benchmark/gather", "results/benchmark.json")


PathT = TypeVar("PathT", str, Path)


def record_path(model: PathT) -> PathT:
    """The record a model-making step writes beside its model, a JSON of what the step did (settings,
    checks, a TensorRT engine's build): ``x.onnx`` -> ``x.json``, ``x.engine`` -> ``x.json``."""
    path = Path(model).with_suffix(".json")
    return path if isinstance(model, Path) else str(path)


def companion_files(step: Step) -> list[str]:
    """What a runtime reads beside the step's model, so that rules declare it too: an OpenVINO IR's
    weights (``.bin``), a TensorRT engine's build record (its precision and the GPU it was built for)."""
    if step.output.endswith(".xml"):
        return [step.output.removesuffix(".xml") + ".bin"]
    if step.rule in (BUILD_ENGINE.rule, BUILD_ENGINE_MIXED.rule):
        return [record_path(step.output)]
    return []
