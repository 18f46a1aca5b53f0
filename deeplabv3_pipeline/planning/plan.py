"""Which files a run makes: the frames of the config, their shards, the models, the cells (model x
variant) and the path of every per-frame, per-model and per-cell file, each spelled once.

``rules/common.smk`` builds one :class:`Plan` from the config and its ``get_*`` functions read it; the
plan is plain data with no Snakemake in it, so it is unit-tested without a dry run (tests/unit/test_plan.py).

Every path is keyed by exactly what it depends on: a model's files by its key (its name, and the graph
settings that differ from the defaults: :func:`model_tag`; precision or soc where they apply), per-frame
files by the data (dataset, split and, where it is not Cityscapes', the image size: :func:`data_tag`),
predictions and results by data x model x variant. No two cells share a file, so switching between
configs (another size, backend, precision, model or dataset) and back finds the earlier one's files.
"""

from __future__ import annotations

import functools
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from deeplabv3_pipeline.backends import REGISTRY
from deeplabv3_pipeline.data.cityscapes import Frame, dataset_id, discover_frames, shard
from deeplabv3_pipeline.data.demo import demo_frames
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.checkpoint import cached_path, is_url
from deeplabv3_pipeline.model.inference_mode import config_test_shape
from deeplabv3_pipeline.model.zoo import (
    ZOO,
    family_of,
    published_miou,
    resolve_config,
    support_entries,
    zoo_checkpoint,
)
from deeplabv3_pipeline.planning import artifacts
from deeplabv3_pipeline.planning.artifacts import Step
from deeplabv3_pipeline.planning.keys import CITYSCAPES_SHAPE, data_tag, given_name, model_tag
from deeplabv3_pipeline.planning.variants import (
    VARIANTS,
    Variant,
    check_config_names,
    check_mixed_frames,
    configured_variant,
    get_variant,
)

DEMO_ROOT = Path("results/demo/cityscapes")
# Keys that never change a cell's result.json: the cell itself says backend and precision; the others
# are the gate, the matrix, the benchmark, job sizes, what is kept on disk and the zoo support table.
# Leaving them out of evaluate's params keeps a change to them from re-evaluating every cell.
NOT_IN_RESULT = ("backend", "precision", "benchmark", "debug", "expect", "matrix", "resources", "storage", "zoo")
# model keys of the ONNX check only (model.verify): it is its own step (rule verify_onnx)
NOT_IN_RESULT_MODEL = ("verify", "verify_tolerance")
# a variant's own sections, recorded only in the results of the cells they shape
VARIANT_SECTIONS = {
    "winograd": lambda variant: variant.winograd,
    "int8": lambda variant: variant.precision == "int8",
    "fp16": lambda variant: variant.precision == "fp16" and variant.mixed,
}
# int8 keys only a mixed variant's model reads (the plain int8 cell's result is not theirs)
MIXED_ONLY = {"int8": ("target", "search")}


@dataclass(frozen=True)
class Model:
    """One model of the run: ``model`` of the config, or an entry of ``matrix.models``."""

    # its key: the config's name plus model_tag (``deeplabv3``, ``deeplabv3@64x128``); names its files
    # (results/models/<key>/<key>.onnx, ...) and cells
    name: str
    config: str  # an mmseg config name or file
    checkpoint: str  # as given: "" (a random one in the real format: the demo), a URL or a file

    @property
    def demo(self) -> bool:
        return not self.checkpoint


@dataclass(frozen=True)
class Cell:
    """One figure of the matrix: a model run by a variant (backend-precision[-winograd])."""

    model: str
    variant: Variant

    @property
    def name(self) -> str:
        return f"{self.model}/{self.variant.name}"

    @property
    def backend(self) -> str:
        return self.variant.backend

    @property
    def precision(self) -> str:
        return self.variant.precision


def models_of(config: Mapping) -> tuple[Model, ...]:
    """``model`` then ``matrix.models``; two with one name, or an unknown config, are a UserError."""
    entries = [("model", config["model"])] + [
        (f"matrix.models[{index}]", entry) for index, entry in enumerate(config["matrix"]["models"])
    ]
    models: dict[str, Model] = {}
    for where, entry in entries:
        checkpoint = entry.get("checkpoint", "")
        if checkpoint == ZOO:  # the URL of the model zoo's entry for this config (fetched, sha256-checked)
            checkpoint = zoo_checkpoint(entry["config"], f"{where}.checkpoint")
        model = Model(entry["name"], entry["config"], checkpoint)
        if model.name in models:
            raise UserError(
                f"{where}: a second model named {model.name!r}: every model's files are named after it, "
                "so give each model its own name"
            )
        twin = next((name for name in models if rule_safe(name) == rule_safe(model.name)), None)
        if twin:
            raise UserError(
                f"{where}: model names {twin!r} and {model.name!r} differ only in - and _, which the per-cell "
                "rule names cannot tell apart (infer_<model>_<variant>): rename one"
            )
        try:
            resolve_config(model.config)
        except UserError as error:
            raise UserError(f"{where}.config: {error}") from None
        models[model.name] = model
    tag = model_tag(config["model"])
    return tuple(replace(model, name=model.name + tag) for model in models.values())


@dataclass(frozen=True)
class SupportEntry:
    """A model-zoo entry of ``zoo.support``: a matrix model of its own (random weights, the demo's way)."""

    model: str  # its model name: zoo-<family> (zoo.support: families), else zoo-<entry name>
    entry: str  # the entry's name: its config name
    family: str


def support_of(config: Mapping) -> tuple[SupportEntry, ...]:
    """The entries ``zoo.support`` names, each with the key of the model it becomes."""
    choice = config.get("zoo", {}).get("support")
    entries = support_entries(choice)
    tag = model_tag(config["model"])
    return tuple(
        SupportEntry(
            (f"zoo-{family_of(entry)}" if choice == "families" else "zoo-" + re.sub(r"[^A-Za-z0-9_-]", "-", entry.name))
            + tag,
            entry.name,
            family_of(entry),
        )
        for entry in entries
    )


def debug_cells_of(config: Mapping, models: Sequence[Model], reference: Variant) -> tuple[Cell, ...]:
    """The cells of config ``debug``: every model of ``debug.models`` (empty: all) x ``debug.variants``,
    each checked (an unknown name, or a variant no backend can compare, names the valid ones)."""
    debug = config["debug"]
    names = [model.name for model in models]
    for name in debug["models"]:
        if name not in names:
            raise UserError(f"debug.models: unknown model {name!r}: choose from {', '.join(names)}")
    variants = [get_variant(name, "debug.variants") for name in dict.fromkeys(debug["variants"])]
    compared = [name for name, each in VARIANTS.items() if REGISTRY[each.backend].tensors]
    for variant in variants:
        if REGISTRY[variant.backend].tensors is None and REGISTRY[variant.backend].layer_compare is None:
            raise UserError(
                f"debug.variants: {variant.name} cannot be compared layer by layer: choose from {', '.join(compared)}"
            )
    if variants and REGISTRY[reference.backend].tensors is None:
        raise UserError(
            f"matrix.reference: {reference.name}, the reference of the layer comparison (debug.variants), does "
            f"not run here: choose from {', '.join(compared)}"
        )
    chosen = debug["models"] or names
    return tuple(Cell(name, variant) for name in chosen for variant in variants)


def matrix_variants(config: Mapping) -> tuple[Variant, ...]:
    """``matrix.reference`` first, then ``matrix.variants``, each checked (an unknown one names the valid ones)."""
    matrix = config["matrix"]
    names = dict.fromkeys([matrix["reference"], *matrix["variants"]])
    return tuple(get_variant(name, "matrix.variants") for name in names)


@functools.cache
def _pipeline_test_shape(config: str, image_shape: tuple[int, int]) -> tuple[int, int]:
    """config_test_shape, read once per config in a parse (it reads the mmseg config with mmengine)."""
    return config_test_shape(config, image_shape)


@dataclass(frozen=True)
class Plan:
    """The frames of one config and where everything derived from them goes.

    What derives from the frames lives under ``data`` (``<dataset id>/<split>``): another root or split
    never reads or overwrites it, and switching back finds it again.
    """

    root: Path
    split: str
    dataset: str  # "demo", or <root folder name>-<8 hex of its absolute path>
    frames: tuple[Frame, ...]
    shard_count: int
    frames_without_train_ids: tuple[Frame, ...]  # the `labels` rule makes theirs under results/
    models: tuple[Model, ...] = ()  # the configured model first
    cell: Cell | None = None  # the configured one: results/result.json
    matrix_cells: tuple[Cell, ...] = ()  # models x matrix variants, the reference variant first
    debug_cells: tuple[Cell, ...] = ()  # config debug: compared layer by layer with their reference cell
    support: tuple[SupportEntry, ...] = ()  # zoo.support's entries, models of the matrix
    # model.input_shape unset: the images are Cityscapes' size and each model runs at its test pipeline's
    test_size_from_pipeline: bool = False
    refused: tuple[tuple[str, str], ...] = ()  # (support model, why it cannot run here): no cells
    cache_dir: Path = Path("checkpoints")
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping) -> Plan:
        """The plan of a validated config: discovers the frames (UserError for a bad dataset root)."""
        check_config_names(config)
        split = config["dataset"]["split"]
        demo = not config["dataset"]["root"]
        size_tag = data_tag(config["model"])
        # the demo draws its frames at the input size: one tree per size
        root = DEMO_ROOT.with_name(DEMO_ROOT.name + size_tag) if demo else Path(config["dataset"]["root"])
        frames = tuple(demo_frames(config["demo"]["images"]) if demo else discover_frames(root, split))
        without = tuple(frame for frame in frames if demo or not frame.train_ids(root, split).exists())
        check_mixed_frames(config, len(frames))
        support = support_of(config)
        models = models_of(config)
        taken = {model.name for model in models}
        clash = next((entry.model for entry in support if entry.model in taken), None)
        if clash:
            raise UserError(f"zoo.support: its model {clash!r} has the name of a model of the config: rename that one")
        models += tuple(Model(entry.model, entry.entry, "") for entry in support)
        variant = configured_variant(config["backend"], config["precision"], config["winograd"]["enabled"])
        matrix = matrix_variants(config)
        from_pipeline = not config["model"].get("input_shape")
        if from_pipeline:
            config = {**config, "model": {**config["model"], "input_shape": list(CITYSCAPES_SHAPE)}}
        return cls(
            root=root,
            split=split,
            dataset="demo" if demo else dataset_id(root),
            frames=frames,
            shard_count=shard_count(config["shards"], len(frames)),
            frames_without_train_ids=without,
            models=models,
            cell=Cell(models[0].name, variant),
            matrix_cells=tuple(Cell(model.name, variant) for model in models for variant in matrix),
            debug_cells=debug_cells_of(config, models, matrix[0]),
            cache_dir=Path(config["model"]["cache_dir"]),
            support=support,
            test_size_from_pipeline=from_pipeline,
            config=config,
        )

    def without(self, refused: Mapping[str, str]) -> Plan:
        """The plan less the support models that cannot run here (``refused``: name -> why): no job of theirs
        is planned, and the support table gives the reason."""
        if not refused:
            return self
        return replace(
            self,
            models=tuple(model for model in self.models if model.name not in refused),
            matrix_cells=tuple(cell for cell in self.matrix_cells if cell.model not in refused),
            debug_cells=tuple(cell for cell in self.debug_cells if cell.model not in refused),
            refused=tuple(refused.items()),
        )

    @property
    def demo(self) -> bool:
        return self.dataset == "demo"

    @property
    def data(self) -> str:
        """The per-frame files' key: ``<dataset>/<split>``, with the size tag where the images are not
        Cityscapes' size (``demo/val@64x128``)."""
        return f"{self.dataset}/{self.split}{data_tag(self.config['model'])}"

    @property
    def shards(self) -> list[int]:
        return list(range(self.shard_count))

    def shard_frames(self, index: int) -> list[Frame]:
        return shard(list(self.frames), index, self.shard_count)

    # ------------------------------------------------------------------ inputs

    def image(self, frame: Frame) -> str:
        return str(frame.image(self.root, self.split))

    def label_ids(self, frame: Frame) -> str:
        return str(frame.label_ids(self.root, self.split))

    def made_train_ids(self, frame: Frame) -> str:
        """Where the `labels` rule writes a frame's trainIds (the dataset folder is never written to)."""
        return f"results/labels/{self.data}/{frame.city}/{frame.frame}_gtFine_labelTrainIds.png"

    @cached_property
    def _made_labels(self) -> frozenset[Frame]:
        return frozenset(self.frames_without_train_ids)

    def frames_to_label(self, shard_index: int | None = None) -> list[Frame]:
        """The frames whose trainIds the `labels` rule makes: all of them, or the shard's."""
        if shard_index is None:
            return list(self.frames_without_train_ids)
        return [frame for frame in self.shard_frames(shard_index) if frame in self._made_labels]

    def train_ids(self, frame: Frame) -> str:
        """The trainIds label evaluation reads: the made one, or the dataset's own."""
        if frame in self._made_labels:
            return self.made_train_ids(frame)
        return str(frame.train_ids(self.root, self.split))

    def prep_bin(self, frame: Frame) -> str:
        return f"results/prep_dataset/{self.data}/{frame.stem}.bin"

    # ------------------------------------------------------------------ models

    def model(self, name: str) -> Model:
        return self._models[name]

    @cached_property
    def _models(self) -> dict[str, Model]:
        return {model.name: model for model in self.models}

    def checkpoint(self, name: str) -> str:
        """The checkpoint file a model is made from: the demo's random one, a URL's download (cached
        under model.cache_dir, sha256-checked), or the user's file."""
        model = self.model(name)
        if model.demo:
            return self.demo_checkpoint(name).output
        if is_url(model.checkpoint):
            return str(cached_path(model.checkpoint, self.cache_dir))
        return model.checkpoint

    def demo_checkpoint(self, name: str) -> Step:
        """The step that makes model ``name``'s demo checkpoint, by the name the model was given: trained on
        other synthetic frames (demo.checkpoint: trained) or random, in two files that never stand in for each
        other; its weights depend on its mmseg config, demo.seed (and demo.training) only, so every size and
        graph of it shares one."""
        step = artifacts.TRAIN_DEMO_CHECKPOINT if self.trained_demo else artifacts.DEMO_CHECKPOINT
        return step.format(model=given_name(name))

    @property
    def synthetic_checkpoint(self) -> str:
        """What a demo checkpoint is, as a result's synthetic_inputs and the run's banner say it."""
        return "checkpoint trained on synthetic frames" if self.trained_demo else "checkpoint"

    @property
    def trained_demo(self) -> bool:
        """Whether the demo's checkpoints are trained (demo.checkpoint: trained) rather than random."""
        return self.config["demo"]["checkpoint"] == "trained"

    def model_named(self, given: str) -> Model:
        """The model given the name ``given`` in the config (one per name: models_of)."""
        return next(model for model in self.models if given_name(model.name) == given)

    def user_checkpoint(self, name: str) -> str | None:
        """The model's checkpoint where it is a local file of the user's, or None (a URL's download is
        sha256-checked, the demo's is made by a rule): the one the workflow fingerprints and checks."""
        model = self.model(name)
        return None if model.demo or is_url(model.checkpoint) else model.checkpoint

    @property
    def input_shape(self) -> tuple[int, int]:
        """The images' (and bins', and predictions') height and width: model.input_shape, else Cityscapes'."""
        height, width = self.config["model"]["input_shape"]
        return int(height), int(width)

    def test_shape(self, name: str) -> tuple[int, int] | None:
        """The size model ``name`` runs at where it is not the input's: model.test_shape, or (model.input_shape
        unset) its mmseg config's test pipeline's for a Cityscapes frame (a 769x769 config: 1025x2049)."""
        if self.config["model"].get("test_shape"):
            height, width = self.config["model"]["test_shape"]
            return int(height), int(width)
        if not self.test_size_from_pipeline:
            return None
        shape = _pipeline_test_shape(self.model(name).config, self.input_shape)
        return None if shape == self.input_shape else shape

    def model_settings(self, name: str) -> dict[str, Any]:
        """The config as one model sees it: ``model`` is that model's entry over the shared model keys
        (input_shape, opset, verify apply to every model), with its test size (:meth:`test_shape`)."""
        model = self.model(name)
        test_shape = self.test_shape(name)
        entry = {
            "name": model.name,
            "config": model.config,
            "checkpoint": model.checkpoint,
            "test_shape": list(test_shape) if test_shape else None,
        }
        return {**self.config, "model": {**self.config["model"], **entry}}

    def support_args(self) -> list[str]:
        """The arguments of rule zoo_support's ``scripts/zoo.py support``: ``--entry MODEL ENTRY FAMILY`` per
        zoo.support entry, ``--refused MODEL REASON`` per refused one, ``--atc MODEL SOC COMMAND`` per accepted
        entry and ascend.soc_versions (the command rule atc would make its fp16 .om with), ``--opset``."""
        from deeplabv3_pipeline.backends.ascend.atc import atc_command

        args = [arg for entry in self.support for arg in ("--entry", entry.model, entry.entry, entry.family)]
        args += [arg for model, reason in self.refused for arg in ("--refused", model, reason)]
        refused, ascend = dict(self.refused), self.config["ascend"]
        for entry in (entry for entry in self.support if entry.model not in refused):
            for soc in ascend["soc_versions"]:
                om = artifacts.fill(artifacts.ATC.output, model=entry.model, precision="fp16", soc=soc)
                onnx = self.sim_model(entry.model)
                command = atc_command(Path(onnx), Path(om), soc, self.input_shape, "fp16", ascend["atc_args"])
                args += ["--atc", entry.model, soc, shlex.join(command)]
        return [*args, "--opset", str(self.config["model"]["opset"])]

    def model_steps(self, cell: Cell) -> list[Step]:
        """The steps that make the model ``cell`` runs, with its model's name filled in."""
        return [step.format(model=cell.model) for step in cell.variant.model_steps(self.config)]

    def model_file(self, cell: Cell) -> str:
        """The model ``cell`` runs: its last model step's output, or the checkpoint (pytorch)."""
        steps = self.model_steps(cell)
        return steps[-1].output if steps else self.checkpoint(cell.model)

    def model_companions(self, cell: Cell) -> list[str]:
        """Files the runtime reads beside that model (artifacts.companion_files)."""
        steps = self.model_steps(cell)
        return artifacts.companion_files(steps[-1]) if steps else []

    def model_records(self, cell: Cell) -> list[tuple[str, str]]:
        """(result.json key, JSON) of every model step that writes one beside its model."""
        return [(step.record, artifacts.record_path(step.output)) for step in self.model_steps(cell) if step.record]

    def sim_model(self, name: str) -> str:
        return artifacts.SIMPLIFY_ONNX.format(model=name).output

    # ------------------------------------------------------------------ cells

    @cached_property
    def cells(self) -> tuple[Cell, ...]:
        """Every cell the workflow can make: the configured one, then the matrix's."""
        return tuple(dict.fromkeys([self.cell, *self.matrix_cells]))  # type: ignore[list-item]

    def cell_folder(self, cell: Cell) -> str:
        return f"{self.data}/{cell.model}/{cell.variant.name}"

    def prediction(self, cell: Cell, frame: Frame) -> str:
        """ais_bench's naming: ``{stem}_0.bin``, one folder per data x model x variant."""
        return f"results/infer/{self.cell_folder(cell)}/{frame.stem}_0.bin"

    def predictions(self, cell: Cell) -> list[str]:
        return [self.prediction(cell, frame) for frame in self.frames]

    def shard_predictions(self, cell: Cell, index: int) -> list[str]:
        return [self.prediction(cell, frame) for frame in self.shard_frames(index)]

    def shard_summary(self, cell: Cell, index: int) -> str:
        return f"results/infer/{self.cell_folder(cell)}/shards/{index}.json"

    def summary(self, cell: Cell) -> str:
        return f"results/infer/{self.cell_folder(cell)}/summary.json"

    def result(self, cell: Cell) -> str:
        """A cell's result.json (its result.txt beside it)."""
        return f"results/cells/{self.cell_folder(cell)}/result.json"

    def result_text(self, cell: Cell) -> str:
        """The guide's ``aAcc: x`` / ``mIoU: y`` beside :meth:`result`."""
        return f"results/cells/{self.cell_folder(cell)}/result.txt"

    def report_folder(self, cell: Cell) -> str:
        """Where rule report_figures draws a cell's figures and tables: keyed as the cell, so that a figure
        of another config (another size, model or variant) never stands in for this one's."""
        return f"results/report/{self.cell_folder(cell)}"

    # ------------------------------------------------------------------ the per-layer comparison (config debug)

    def layer_reference(self, cell: Cell) -> Cell:
        """The cell a debug cell is compared with: its model's matrix.reference cell."""
        return Cell(cell.model, self.matrix_cells[0].variant)

    def layers_compared_here(self, cell: Cell) -> bool:
        """Whether the cell's backend runs here for the comparison (else its tool's commands are planned)."""
        return REGISTRY[cell.backend].tensors is not None

    def layer_outputs(self, cell: Cell) -> dict[str, str]:
        """``json`` (and ``csv``, ``figure`` where compared here) of a debug cell's comparison."""
        record = self.step(artifacts.COMPARE_LAYERS, cell).output
        if not self.layers_compared_here(cell):
            return {"json": record}
        stem = record.removesuffix(".json")
        return {"json": record, "csv": f"{stem}.csv", "figure": f"{stem}.png"}

    def layer_source(self, cell: Cell) -> str:
        """The ONNX model a debug cell's model is built from: the model itself where it is one, else (an
        engine, an .om) the step's before it."""
        if self.layers_compared_here(cell):
            return self.model_file(cell)
        return self.model_steps(cell)[-2].output

    def step(self, step: Step, cell: Cell, **wildcards: object) -> Step:
        """A per-cell step (INFER, GATHER_SUMMARIES, EVALUATE) with the cell's keys filled in."""
        return step.format(data=self.data, model=cell.model, variant=cell.variant.name, **wildcards)

    def run_config(self, cell: Cell) -> dict[str, Any]:
        """The config recorded in ``cell``'s result.json (and a param of its evaluate: a change reruns
        it): the model's settings without NOT_IN_RESULT, the other backends' sections and the sections
        of variants it is not (winograd, int8, fp16; a plain int8 cell without int8.target and int8.search,
        which only a -mixed cell's model reads), and with the cell's variant and precision."""
        settings = self.model_settings(cell.model)
        others = set(REGISTRY) - {cell.backend}
        used = {
            key: value
            for key, value in settings.items()
            if key not in NOT_IN_RESULT
            and key not in others
            and (key not in VARIANT_SECTIONS or VARIANT_SECTIONS[key](cell.variant))
        }
        used["model"] = {key: value for key, value in settings["model"].items() if key not in NOT_IN_RESULT_MODEL}
        if not cell.variant.mixed:
            for section, keys in MIXED_ONLY.items():
                if section in used:
                    used[section] = {key: value for key, value in used[section].items() if key not in keys}
        if not self.trained_demo:  # the training of a checkpoint this run does not train
            used["demo"] = {key: value for key, value in used["demo"].items() if key != "training"}
        return used | {"variant": cell.variant.name, "precision": cell.precision}

    # ------------------------------------------------------------------ what a run waits for and records

    def expected_miou(self, expected: float | str) -> float:
        """The gate's mIoU: a number as given, or (``zoo``) what mmseg publishes for the configured model."""
        if expected != ZOO:
            return float(expected)
        assert self.cell is not None
        config = self.model(self.cell.model).config
        miou = published_miou(config)
        if miou is None:
            raise UserError(
                f"expect.miou: zoo, but model.config {config!r} is not an mmseg model-zoo entry with a "
                "published Cityscapes mIoU: give the expected mIoU as a number"
            )
        return miou

    def verification(self, cells: Iterable[Cell]) -> list[str]:
        """The ONNX checks against PyTorch (model.verify) of every model of ``cells`` whose variant runs
        a model made from the ONNX export (none with model.verify off)."""
        if not self.config["model"]["verify"]:
            return []
        exported = [
            cell.model for cell in cells if artifacts.EXPORT_ONNX.format(model=cell.model) in self.model_steps(cell)
        ]
        return [artifacts.VERIFY_ONNX.format(model=name).output for name in dict.fromkeys(exported)]

    def synthetic(self, cell: Cell) -> str:
        """What of the cell's inputs is synthetic: "dataset", "checkpoint" (random) or "checkpoint trained on
        synthetic frames", both, or "" (a real run)."""
        checkpoint = self.synthetic_checkpoint
        parts = [what for what, flag in (("dataset", self.demo), (checkpoint, self.model(cell.model).demo)) if flag]
        return " and ".join(parts)

    def run_steps(self, extra: Iterable[Step] = ()) -> list[Step]:
        """The steps of a run of the configured cell (results/result.json), in pipeline order: the
        inputs, the steps that make its model (and ``extra``, e.g. every soc's .om), inference and
        evaluation. Their benchmark files are the report's runtimes."""
        cell = self.cell
        assert cell is not None
        steps = [self.demo_checkpoint(cell.model)] if self.model(cell.model).demo else []
        labelled = [index for index in self.shards if self.frames_to_label(index)]
        steps += [artifacts.LABELS.format(data=self.data, shard=index) for index in labelled]
        steps += [artifacts.PREPROCESS.format(data=self.data, shard=index) for index in self.shards]
        steps += list(dict.fromkeys([*self.model_steps(cell), *extra]))
        steps += [self.step(artifacts.INFER, cell, shard=index) for index in self.shards]
        return [*steps, self.step(artifacts.EVALUATE, cell)]


def rule_safe(text: str) -> str:
    """``text`` in identifier characters (what a rule name may hold): - and . become _."""
    return re.sub(r"\W", "_", text)


def rule_name(stage: str, cell: Cell, shard: int | None = None) -> str:
    """A per-cell rule's name: ``infer_<model>_<variant>[_shard<i>]`` (identifier characters only), by the
    model's given name: within one config every model has the same tag, so the names stay unique."""
    name = rule_safe(f"{stage}_{given_name(cell.model)}_{cell.variant.name}")
    return name if shard is None else f"{name}_shard{shard}"


# The most frames one preprocess or infer job takes. Snakemake finds a file's producer by scanning the
# producing job's file lists, so planning grows with frames x frames-per-job: 3000 frames in one job
# take 29 s to plan, in jobs of 250 a few seconds (docs/performance.md, "Planning"). A job loads its
# model once; at 1024x2048 a model load is under 1 % of 250 images' inference.
MAX_FRAMES_PER_SHARD = 250


def shard_count(asked: int, frames: int) -> int:
    """``asked`` shards, more where a shard would hold over MAX_FRAMES_PER_SHARD frames, and never
    more than there are frames (an empty shard would be an empty job)."""
    return min(max(asked, -(-frames // MAX_FRAMES_PER_SHARD)), frames)


def note_clamped_shards(plan: Plan, asked: int) -> None:
    """Say it when the plan runs another number of shards than the config asks for."""
    if plan.shard_count < asked:
        print(
            f"note: shards: {asked} but only {len(plan.frames)} frames: running {plan.shard_count} shards",
            file=sys.stderr,
        )
    elif plan.shard_count > asked:
        print(
            f"note: shards: {asked}, but {len(plan.frames)} frames make {plan.shard_count} shards of at most "
            f"{MAX_FRAMES_PER_SHARD} frames each (they plan in seconds, and the result is the same)",
            file=sys.stderr,
        )
