# The config's check, its plan (frames, shards, models, cells and every path: deeplabv3_pipeline/planning/plan.py)
# and the functions the rules call (input functions named get_*), one section per rule file
# (Snakemake's lint keeps functions out of rule files). What is not about this workflow's config
# lives in the package: the paths of artifacts, logs and benchmark files in
# deeplabv3_pipeline/planning/artifacts.py, what a backend needs in its subpackage (backends/<name>/),
# the variants (backend-precision[-winograd]) in deeplabv3_pipeline/planning/variants.py.
import functools
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The shared package, importable also without `pip install -e .`.
sys.path.insert(0, workflow.basedir)

from deeplabv3_pipeline.planning import artifacts  # noqa: E402
from deeplabv3_pipeline.backends import REGISTRY, backend_flags  # noqa: E402
from deeplabv3_pipeline.model.checkpoint import is_url  # noqa: E402
from deeplabv3_pipeline.model.footprint import job_resources  # noqa: E402
from deeplabv3_pipeline.model.train_flags import training_flags  # noqa: E402
from deeplabv3_pipeline.model.inference_mode import InferenceModeOptions  # noqa: E402
from deeplabv3_pipeline.options import from_config, to_flags  # noqa: E402
from deeplabv3_pipeline.planning.plan import (
    Cell,
    Plan,
    note_clamped_shards,
    rule_name as cell_rule_name,
)  # noqa: E402
from deeplabv3_pipeline.errors import (
    UserError,
    check_no_wildcard_braces,
    recompute_hint,
)  # noqa: E402
from deeplabv3_pipeline.report.headline import cell_line, headline  # noqa: E402
from deeplabv3_pipeline.report.matrix import gate_failure  # noqa: E402
from deeplabv3_pipeline.config_check import check_config  # noqa: E402
from deeplabv3_pipeline.planning.keys import given_name, shape_text  # noqa: E402
from deeplabv3_pipeline.report.stamp import (
    STAMP_FILE,
    Stamp,
    combined,
    config_digest,
    stamp_problem,
)  # noqa: E402
from deeplabv3_pipeline.model.model_checks import (
    check_checkpoints_fit,
    check_models_run,
)  # noqa: E402
from deeplabv3_pipeline.evaluation.provenance import (
    fingerprint,
    kept_result_problem,
)  # noqa: E402
from deeplabv3_pipeline.backends.ascend.atc import atc_command  # noqa: E402
from deeplabv3_pipeline.cpu import has_bf16  # noqa: E402
from deeplabv3_pipeline.optimize.quantize import (
    held_out_files,
    select_calibration_files,
)  # noqa: E402
from deeplabv3_pipeline.planning.variants import (
    CPU_VARIANTS,
    VARIANTS,
    benchmark_variants,
)  # noqa: E402

# Keys of earlier versions, with what replaced them (the schema would only say "unexpected").
for old_key, new_key in (("compare", "matrix (variants, reference)"),):
    if old_key in config:
        raise WorkflowError(
            f"error: config key {old_key} is gone: use {new_key} (README, 'The validation matrix')"
        )
# One line for a bad key or value (the closest valid key, the expected form and an example), before
# Snakemake's own check, which prints the whole schema; that one still runs, to fill in the defaults.
try:
    check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except UserError as error:
    raise WorkflowError(f"error: {error}") from None
validate(config, schema="../schemas/config.schema.yaml")


envvars:
    "PATH",


# Jobs run `python scripts/...`: the interpreter running Snakemake (it has every dependency)
# comes first on PATH, unless --use-conda puts the env's own in front. The package is found
# through PYTHONPATH, however (and whether) it was installed: also in a conda env, which has
# only the requirements. Every job parses this file again, on a cluster too.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# (update(), not os.environ[...]: PYTHONPATH need not exist, which `envvars:` would demand)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [workflow.basedir, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
)

# The frames, their shards, the models, the cells and every path (deeplabv3_pipeline/planning/plan.py).
try:
    check_no_wildcard_braces(config["dataset"]["root"], "dataset.root")
    check_no_wildcard_braces(config["model"]["cache_dir"], "model.cache_dir")
    check_no_wildcard_braces(workflow.basedir, "the workflow folder")
    for where, entry in [("model", config["model"])] + [
        (f"matrix.models[{index}]", entry)
        for index, entry in enumerate(config["matrix"]["models"])
    ]:
        for key in ("config", "checkpoint"):
            check_no_wildcard_braces(entry.get(key, ""), f"{where}.{key}")
    PLAN = Plan.from_config(config)
except UserError as error:
    raise WorkflowError(f"error: {error}") from None
note_clamped_shards(PLAN, config["shards"])

try:
    check_checkpoints_fit(PLAN)
    MODELS_RUN = check_models_run(PLAN)
    # the zoo.support models that cannot run here: no jobs, a row with the reason in the support table
    PLAN = PLAN.without(MODELS_RUN.refused)
except UserError as error:
    raise WorkflowError(f"error: {error}") from None
CELL = PLAN.cell  # the configured cell: results/result.json
INPUT_SHAPE = PLAN.input_shape  # the images' size: model.input_shape, else Cityscapes'

BACKEND = CELL.backend
DEMO_DATA = PLAN.demo
FRAMES = list(PLAN.frames)
SHARDS = PLAN.shards
# Model keys as a wildcard constraint: the model rules' {model} takes exactly the plan's.
MODEL_PATTERN = "|".join(re.escape(model.name) for model in PLAN.models)
# the given names of the models with a random checkpoint (the demo's: PLAN.demo_checkpoint)
DEMO_MODELS = [given_name(model.name) for model in PLAN.models if model.demo]
CHECKPOINT_URLS = list(
    dict.fromkeys(model.checkpoint for model in PLAN.models if is_url(model.checkpoint))
)


def warn_synthetic():
    """When the run starts (onstart; not at every parse, so not in each cluster job's log): say loudly
    which inputs are synthetic."""
    if DEMO_DATA or DEMO_MODELS:
        synthetic = (["dataset"] if DEMO_DATA else []) + (
            [PLAN.synthetic_checkpoint] if DEMO_MODELS else []
        )
        print(
            f"*** DEMO: SYNTHETIC {' AND '.join(synthetic).upper()} (set dataset.root / model.checkpoint for "
            "the real Cityscapes run). The mIoU of this run says nothing about Cityscapes. ***",
            file=sys.stderr,
        )


def script(name):
    """Absolute path of a stage CLI in scripts/."""
    return str(Path(workflow.basedir) / "scripts" / name)


def job_threads(wildcards):
    """CPU threads of an inference or quantization job: config `threads`, or (0) all cores.

    "All cores" is --cores of the command; a cluster executor has no such total (reading it
    fails), so there the job asks for 2 unless `threads` says otherwise.
    """
    if config["threads"]:
        return config["threads"]
    try:
        return workflow.cores
    except WorkflowError:
        return 2


def stage_resources(stage):
    """mem_mb, runtime (and gpu for infer) of a kind of job, from config `resources`."""
    return dict(config["resources"][stage])


def model_job_resources(stage):
    """mem_mb and runtime of a model's export_onnx, verify_onnx or simplify_onnx job: config
    resources.export_onnx's numbers, or (auto) sized from the model's footprint (model/footprint.py).
    """

    def sized(key):
        return lambda wildcards: job_resources(
            MODELS_RUN.footprints[wildcards.model],
            stage,
            PLAN.test_shape(wildcards.model)
            or INPUT_SHAPE,  # the size the graph runs at
            config["resources"]["export_onnx"],
        )[key]

    return {"mem_mb": sized("mem_mb"), "runtime": sized("runtime")}


def rule_name(stage, shard_index):
    """`preprocess` with one shard; `preprocess_shard0`, `preprocess_shard1`, ... with several (a
    cell's stage too: `infer_<model>_<variant>[_shard<i>]`)."""
    return stage if len(SHARDS) == 1 else f"{stage}_shard{shard_index}"


def kept(files, key):
    """``files`` as they are, or temp() (deleted once no job of the run needs them) per config `storage`."""
    return files if config["storage"][key] else temp(files)


def get_shard_images(shard_index):
    return [PLAN.image(frame) for frame in PLAN.shard_frames(shard_index)]


def get_shard_bins(shard_index):
    return [PLAN.prep_bin(frame) for frame in PLAN.shard_frames(shard_index)]


def get_all_bins():
    return [path for index in SHARDS for path in get_shard_bins(index)]


def get_image_files():
    return [PLAN.image(frame) for frame in FRAMES]


def get_label_ids_files(shard_index=None):
    """The labelIds of the frames without trainIds: all, or the shard's."""
    return [PLAN.label_ids(frame) for frame in PLAN.frames_to_label(shard_index)]


def get_made_train_ids(shard_index=None):
    return [PLAN.made_train_ids(frame) for frame in PLAN.frames_to_label(shard_index)]


def get_train_ids_files():
    """Every frame's trainIds label: the dataset's own where it has one, else the made one."""
    return [PLAN.train_ids(frame) for frame in FRAMES]


def get_spread_bins(count):
    """``count`` prep bins spread evenly over the sorted image list (none for 0)."""
    if not count:
        return []
    chosen = select_calibration_files([Path(path) for path in get_all_bins()], count)
    return [str(path) for path in chosen]


def get_check_args(wildcards, input):
    """--check-images/--check-data of quantize_onnx.py and winograd_onnx.py (no check without check files)."""
    if not input.check:
        return "--check-images 0"
    return shlex.join(
        ["--check-images", str(len(input.check)), "--check-data", *input.check]
    )


# ---------------------------------------------------------------- backends (backends/<name>/)


def get_backend_args(cell, cpu=False):
    """The flags of scripts/infer.py (and benchmark_variant.py, compare_layers.py) that the cell's backend
    needs from the config, as its model sees it (pytorch: the model's own mmseg config); ``cpu``: PyTorch
    on the CPU whatever pytorch.device says (the CPU benchmark, the per-layer comparison).
    """
    settings = PLAN.model_settings(cell.model)
    return shlex.join(
        backend_flags(
            cell.backend,
            REGISTRY[cell.backend].cpu_config(settings) if cpu else settings,
        )
    )


def check_backend_tools():
    """Before any job runs (not in a dry run): what the backends of the inference jobs to run need must
    be here (a GPU for tensorrt, or for pytorch with pytorch.device cuda). Under a cluster executor the
    jobs run on other nodes (a GPU or NPU partition), which this machine cannot speak for: there each
    job reports what its node lacks, in one line."""
    if not workflow.local_exec:
        return
    to_run = {job.rule.name for job in workflow.dag.needrun_jobs()}
    backends = {
        cell.backend
        for cell in PLAN.cells
        for shard_index in SHARDS
        if rule_name(cell_rule_name("infer", cell), shard_index) in to_run
    }
    missing = [
        f"backend {backend} cannot run here: " + "; ".join(problems)
        for backend in sorted(backends)
        if (problems := REGISTRY[backend].environment_problems(config))
    ]
    if missing:
        raise WorkflowError(
            "error: "
            + "; ".join(missing)
            + ". `snakemake -n -p` shows the planned commands without it."
        )


def print_result_summary():
    """At the end of a successful run that ran a job (Snakemake skips onsuccess when there is nothing to
    do): the headline of each result this run made or found up to date (results/result.json, the cells'),
    never a file on disk that this config did not make (a result.json of another config that this run
    neither asked for nor checked)."""
    published = "results/result.json"
    # the DAG keeps the jobs that ran and those whose outputs a job that ran read (measured: an up-to-date
    # `result` beside a matrix run is not in it); what the run was asked for is up to date too, as it
    # succeeded: the targets, and through the matrix its cells. Not so under --until/--omit-from, which
    # stop short of the targets: then only the DAG's own outputs.
    in_run = {str(path) for job in workflow.dag.jobs for path in job.output}
    settings = workflow.dag_settings
    if not (settings.until or settings.omit_from):
        targets = set(settings.targets) or {"all"}
        in_run |= targets
        if targets & {"all", "result"}:
            in_run.add(published)
        if any(is_matrix_target(target) for target in targets):
            in_run |= set(get_matrix_results())
    shown = [published] if published in in_run else []
    shown += [
        PLAN.result(cell)
        for cell in PLAN.cells
        if PLAN.result(cell) in in_run and (published not in in_run or cell != CELL)
    ]
    results = {
        path: json.loads(Path(path).read_text())
        for path in shown
        if Path(path).is_file()
    }
    lines = [
        f"{path}: {headline(result) if path == published else cell_line(result)}"
        for path, result in results.items()
    ]
    synthetic = [
        path for path, result in results.items() if result.get("synthetic_inputs")
    ]
    if set(synthetic) - {published}:  # (the published headline says it itself)
        lines.append(
            "SYNTHETIC inputs: the mIoUs of these cells say nothing about their models on Cityscapes"
        )
    if lines:
        print("\n".join(lines), file=sys.stderr)


def check_matrix_gate():
    """At the end of a successful run that made the matrix (onsuccess) with matrix.gate.fail: exit with
    status 1 naming each cell that fails its gate; the table stays written. (A later run with nothing
    to do does not get here: the rows' `gate` keep the verdict.)"""
    matrix = artifacts.MATRIX.output
    # the jobs this run ran (the DAG's jobs include the up-to-date ones a target needs)
    made = {str(path) for job in workflow.dag.finished_jobs for path in job.output}
    if (
        not config["matrix"]["gate"]["fail"]
        or matrix not in made
        or not Path(matrix).is_file()
    ):
        return
    failure = gate_failure(json.loads(Path(matrix).read_text())["rows"], matrix)
    if failure:
        print(f"error: {failure} (matrix.gate.fail is true)", file=sys.stderr)
        sys.exit(1)


def is_matrix_target(target):
    """Whether asking for ``target`` (a file or a rule) makes the matrix's cells: the matrix, the support table."""
    return target in ("matrix", "zoo_support") or target.startswith(
        ("results/matrix.", "results/report/matrix.png", "results/zoo/")
    )


def get_extra_targets():
    """What a run of the configured cell makes besides its result (an .om per Ascend soc_version)."""
    steps = REGISTRY[BACKEND].extra_targets(CELL.precision, config)
    return [step.format(model=CELL.model) for step in steps]


def get_final_targets():
    return ["results/result.json"] + [step.output for step in get_extra_targets()]


# ---------------------------------------------------------------- planning (rules/planning.smk)


def index_explicit_outputs():
    """Give every rule whose outputs hold no wildcard an `is_producer` that is one set lookup.

    Snakemake asks each candidate rule whether it makes a file by matching the file against every
    output of the rule, one regular expression each (compiled on first use); with per-frame outputs
    (preprocess, labels, infer) that is frames x frames-per-rule matches and one compile per file.
    For outputs without wildcards "makes this file" is exactly "the file is one of its outputs", so
    the answer is the same; rules with wildcards (the models') keep Snakemake's own matching.
    """
    for each in workflow.rules:
        products = list(each.products())
        if any(product.get_wildcard_names() for product in products):
            continue
        each.is_producer = frozenset(map(str, products)).__contains__


# ---------------------------------------------------------------- inputs (rules/data.smk)


def get_source_fingerprint(paths):
    """A param that changes when any of these source files (not made by the workflow) is replaced,
    whether the new file's mtime is newer or older (provenance.fingerprint; one stat per file).
    """
    return fingerprint(paths) if paths else ""


def get_source_images(shard_index):
    """The shard's images where they are the dataset's own (the demo's are made by a rule)."""
    return [] if DEMO_DATA else get_shard_images(shard_index)


def get_source_label_ids(shard_index):
    return [] if DEMO_DATA else get_label_ids_files(shard_index)


def get_dataset_train_ids_files():
    """The trainIds labels evaluation reads from the dataset itself (not made by rule labels)."""
    made = set(get_made_train_ids())
    return [path for path in get_train_ids_files() if path not in made]


@functools.cache
def get_dataset_train_ids_fingerprint():
    """get_source_fingerprint of the dataset's own trainIds: one stat per label, once per parse (every
    cell's evaluate takes it)."""
    return get_source_fingerprint(get_dataset_train_ids_files())


def get_source_checkpoint(model_name):
    """The model's checkpoint where it is a local file of the user's (PLAN.user_checkpoint)."""
    return list(filter(None, [PLAN.user_checkpoint(model_name)]))


def get_dataset_root(wildcards, output):
    """<root>/leftImg8bit/<split>/<city>/file -> <root>, for the first output file."""
    return str(Path(output[0]).parents[3])


def get_url_checkpoint(url):
    return PLAN.checkpoint(
        next(model.name for model in PLAN.models if model.checkpoint == url)
    )


# ---------------------------------------------------------------- models (rules/model.smk)


def get_checkpoint(wildcards):
    return PLAN.checkpoint(wildcards.model)


def get_model_config(wildcards):
    return PLAN.model(wildcards.model).config


def get_demo_model_config(wildcards):
    """The mmseg config of the model whose demo checkpoint rule demo_checkpoint or train_demo_checkpoint
    makes (by its given name)."""
    return PLAN.model_named(wildcards.model).config


def get_training_args():
    """train_demo_checkpoint.py's flags of config demo.training."""
    return shlex.join(training_flags(config["demo"]["training"]))


def get_test_mode_args(wildcards):
    """--test-mode/--crop-size/--stride/--test-shape of export and verify: what the config sets over the
    mmseg config's test_cfg, and the model's test size (PLAN.test_shape; nothing: the config's own mode at
    the input's size)."""
    settings = from_config(InferenceModeOptions, PLAN.model_settings(wildcards.model))
    return shlex.join(to_flags(settings))


def get_checkpoint_fingerprint(wildcards):
    """A local checkpoint replaced under its name, whatever its mtime, is exported again."""
    return get_source_fingerprint(get_source_checkpoint(wildcards.model))


def get_sim_model(wildcards):
    return PLAN.sim_model(wildcards.model)


def get_winograd_check_bins(wildcards):
    """winograd.check_images prep bins spread evenly over the sorted image list."""
    return get_spread_bins(config["winograd"]["check_images"])


def get_atc_inputs(wildcards):
    """The simplified ONNX, and for ascend-fp16-mixed's folder the --keep_dtype file of its nodes kept fp32."""
    inputs = {"model": get_sim_model(wildcards)}
    if wildcards.precision == artifacts.MIXED_PRECISION_FOLDER.format(precision="fp16"):
        inputs["keep_dtype"] = artifacts.KEEP_DTYPE.format(model=wildcards.model)
    return inputs


def get_atc_command(wildcards, input, output):
    """The guide's atc call for one soc_version, as one shell line (shown by `snakemake -n -p`); a mixed
    .om keeps the nodes of its --keep_dtype file fp32 (ATC's fp16 for the rest)."""
    keep_dtype = input.get("keep_dtype")
    command = atc_command(
        Path(input.model),
        Path(output[0]),
        wildcards.soc,
        INPUT_SHAPE,
        wildcards.precision.removesuffix("-mixed"),
        config["ascend"]["atc_args"],
        Path(keep_dtype) if keep_dtype else None,
    )
    return shlex.join(command)


def get_engine_source(wildcards):
    """What a TensorRT engine is built from: the output of the step before build_engine in the
    tensorrt variant's steps (the simplified ONNX, its fp16 conversion, or the symmetric Q/DQ model).
    """
    cell = Cell(wildcards.model, VARIANTS[f"tensorrt-{wildcards.precision}"])
    return PLAN.model_steps(cell)[-2].output


def get_mixed_engine_source(wildcards):
    """What a tensorrt-<precision>-mixed engine is built from: its mixed fp16 or Q/DQ model."""
    cell = Cell(wildcards.model, VARIANTS[f"tensorrt-{wildcards.precision}-mixed"])
    return PLAN.model_steps(cell)[-2].output


# ---------------------------------------------------------------- int8 (rules/quantize.smk)


def get_calibration_bins(wildcards):
    """int8.calibration_images prep bins spread evenly over the sorted image list."""
    return get_spread_bins(config["int8"]["calibration_images"])


def get_int8_check_bins(wildcards):
    """int8.check_images bins not used for calibration (calibration ones when none are left)."""
    held_out = held_out_files(
        [Path(path) for path in get_all_bins()],
        [Path(path) for path in get_calibration_bins(wildcards)],
        config["int8"]["check_images"],
    )
    return [str(path) for path in held_out]


def get_int8_check_labels(wildcards):
    """The trainIds labels of the int8 check bins where int8.target.max_miou_drop asks for the mIoU drop
    (none otherwise: a target on pixel agreement waits for no label)."""
    return mixed_check_labels("int8", get_int8_check_bins(wildcards))


def get_fp16_check_bins(wildcards):
    """fp16.check_images prep bins spread evenly over the sorted image list (fp16 calibrates on none)."""
    return get_spread_bins(config["fp16"]["check_images"])


def get_fp16_check_labels(wildcards):
    """The trainIds labels of the fp16 check bins where fp16.target.max_miou_drop asks for them."""
    return mixed_check_labels("fp16", get_fp16_check_bins(wildcards))


def mixed_check_labels(section, bins):
    """The labels of ``bins`` where ``<section>.target.max_miou_drop`` is set (else none)."""
    if config[section]["target"]["max_miou_drop"] is None:
        return []
    frames = {PLAN.prep_bin(frame): frame for frame in FRAMES}
    return [PLAN.train_ids(frames[path]) for path in bins]


def get_int8_mixed_args(wildcards):
    """quantize_onnx.py's flags for int8.target within int8.search (of the config only: Snakemake reruns
    the job when they change)."""
    return mixed_flags("int8")


def get_fp16_mixed_args(wildcards):
    """convert_fp16.py's flags for fp16.target within fp16.search."""
    return mixed_flags("fp16")


def mixed_flags(section):
    """The flags of a stage CLI asking for the fewest layers in float that meet ``<section>.target`` within
    ``<section>.search`` (deeplabv3_pipeline/optimize/mixed.py: add_mixed_arguments)."""
    target, search = config[section]["target"], config[section]["search"]
    flags = ["--max-evaluations", str(search["max_evaluations"])]
    flags += ["--max-float-layers", str(search["max_float_layers"])]
    if target["min_pixel_agreement"] is not None:
        flags += ["--target-agreement", str(target["min_pixel_agreement"])]
    if target["max_miou_drop"] is not None:
        flags += ["--target-miou-drop", str(target["max_miou_drop"])]
    return shlex.join(flags)


def get_check_label_args(wildcards, input):
    """--check-labels of the check bins' labels (where the target's max_miou_drop asks for them)."""
    return shlex.join(["--check-labels", *input.labels]) if input.labels else ""


def get_min_agreement(wildcards):
    """int8.tolerance.min_pixel_agreement, 0 (no gate) when unset."""
    return config["int8"]["tolerance"]["min_pixel_agreement"] or 0.0


def quantizer_outputs(step):
    """The model, the OpenVINO IR's weights file where there is one, and the record (its settings JSON)."""
    weights = artifacts.companion_files(step)
    outputs = {"model": step.output} | ({"weights": weights[0]} if weights else {})
    return outputs | {"record": artifacts.record_path(step.output)}


# ---------------------------------------------------------------- inference (rules/infer.smk)


def get_prediction_folder(wildcards, output):
    """Folder of an inference job's predictions (infer.py names them {stem}_0.bin there)."""
    return str(Path(output.predictions[0]).parent)


def get_shard_summaries(cell):
    return [PLAN.shard_summary(cell, index) for index in SHARDS]


# ---------------------------------------------------------------- evaluation and the matrix (rules/evaluate.smk)


def get_evaluate_predictions(cell):
    """An input function: every frame's prediction of the cell. First the result kept from an earlier
    run must still describe the files it was computed from: Snakemake would keep it though a prediction
    it lists is missing (it does not remake an intermediate whose result exists), so that is an error
    here naming the file and the command that recomputes it. (An input function, so that it checks
    only cells the run asks for.)"""

    def predictions_of_cell(wildcards):
        predictions = PLAN.predictions(cell)
        if forced_run():
            return predictions  # the run recomputes what it is told, the advised command among them
        problem = kept_result_problem(
            PLAN.result(cell),
            [*predictions, *get_train_ids_files()],
            PLAN.run_config(cell),
            may_be_missing=[] if config["storage"]["keep_predictions"] else predictions,
            sources=[
                *get_dataset_train_ids_files(),
                *get_source_checkpoint(cell.model),
            ],
        )
        if problem:
            raise WorkflowError(f"error: {problem}")
        return predictions

    return predictions_of_cell


def forced_run():
    """Whether this run was told to recompute something (--forcerun, --forceall, --force). Not
    --rerun-incomplete: the default profile always sets it (profiles/default)."""
    settings = getattr(workflow, "dag_settings", None)
    return bool(
        settings and (settings.forcerun or settings.forceall or settings.forcetargets)
    )


def get_verification(cells):
    """The ONNX checks the final steps wait for (the published result, the matrix, the benchmark), so
    a change of model.verify reruns only the check and those cheap steps (PLAN.verification).
    """
    return PLAN.verification(cells)


def get_run_config_json(cell):
    """What the cell's result.json records of the config (PLAN.run_config), as a param of its evaluate."""
    return json.dumps(PLAN.run_config(cell), sort_keys=True)


def get_dataset_json():
    """What the frames are, recorded in result.json."""
    return json.dumps(
        {
            "root": str(PLAN.root),
            "split": PLAN.split,
            "id": PLAN.dataset,
            "frames": len(FRAMES),
        }
    )


def get_synthetic_note(cell):
    """--synthetic naming what of the cell's inputs is synthetic (none: no flag)."""
    synthetic = PLAN.synthetic(cell)
    return shlex.join(["--synthetic", synthetic]) if synthetic else ""


def get_model_record_files(cell):
    return [path for _, path in PLAN.model_records(cell)]


def get_model_record_args(cell):
    """evaluate.py --model-record KEY=JSON for each model record (none: no flag)."""
    records = [f"{key}={path}" for key, path in PLAN.model_records(cell)]
    return shlex.join(["--model-record", *records]) if records else ""


def get_gate_args():
    """matrix.py flags of the configured accuracy gate (matrix.gate; a null check gets no flag). The run
    fails on a failing cell in onsuccess (check_matrix_gate), after the table is written.
    """
    gate = config["matrix"]["gate"]
    flags = {
        "--gate-relative": gate["relative"],
        "--gate-max-drop": gate["max_drop"],
        "--gate-min-pixel-agreement": gate["min_pixel_agreement"],
    }
    return shlex.join(
        word
        for flag, value in flags.items()
        if value is not None
        for word in (flag, str(value))
    )


def get_expect_args():
    """select_result.py flags of the configured mIoU gate (none when expect.miou is unset)."""
    expect = config["expect"]
    if expect["miou"] is None:
        return ""
    try:
        miou = PLAN.expected_miou(expect["miou"])
    except UserError as error:
        raise WorkflowError(f"error: {error}") from None
    return shlex.join(
        ["--expect-miou", str(miou), "--tolerance", str(expect["tolerance"])]
    )


def get_matrix_results():
    return [PLAN.result(cell) for cell in PLAN.matrix_cells]


def get_matrix_predictions():
    return [path for cell in PLAN.matrix_cells for path in PLAN.predictions(cell)]


def get_support_args():
    """zoo_support's --entry, --refused, --atc and --opset (PLAN.support_args)."""
    return shlex.join(PLAN.support_args())


# ---------------------------------------------------------------- the per-layer comparison (rules/debug.smk)


def get_debug_bins():
    """The frames a layer comparison runs on: debug.images of them, spread over the sorted frames."""
    return get_spread_bins(min(config["debug"]["images"], len(FRAMES)))


def get_layer_inputs(cell):
    """The files of a debug cell's comparison: the reference cell's model and the cell's (where its backend
    is not here: the ONNX model its engine or .om is built from), what their runtimes read beside them,
    the ONNX graph whose tensor names and order the rows follow, and the frames."""
    reference = PLAN.layer_reference(cell)
    companions = PLAN.model_companions(reference)
    if PLAN.layers_compared_here(cell):
        companions += PLAN.model_companions(cell)
    return {
        "reference": PLAN.model_file(reference),
        "model": PLAN.layer_source(cell),
        "companions": companions,
        "graph": PLAN.sim_model(cell.model),
        "bins": get_debug_bins(),
    }


def get_layer_args(cell):
    """compare_layers.py's flags of a debug cell: both sides' backends, precisions and backend options,
    the images' size, the thresholds (debug.thresholds), and where the cell's backend is not here the
    engine or .om it would compare (planned) and the ONNX model that is built from."""
    reference = PLAN.layer_reference(cell)
    flags = [
        "--reference-backend", reference.backend, "--reference-precision", reference.precision,
        "--backend", cell.backend, "--precision", cell.precision,
        "--input-shape", *map(str, INPUT_SHAPE),
    ]  # fmt: skip
    for name, limit in config["debug"]["thresholds"].items():
        flags += ["--threshold", f"{name}={limit}"]
    if not PLAN.layers_compared_here(cell):
        flags += ["--source", PLAN.layer_source(cell)]
    flags += ["--model", PLAN.model_file(cell)]
    both = dict.fromkeys(
        [get_backend_args(reference, cpu=True), get_backend_args(cell, cpu=True)]
    )
    return " ".join([shlex.join(flags), *both])


def get_debug_outputs():
    """Every file of the configured layer comparisons (target debug)."""
    return [
        path for cell in PLAN.debug_cells for path in PLAN.layer_outputs(cell).values()
    ]


# ---------------------------------------------------------------- report (rules/report.smk)


def get_report_benchmarks():
    """Benchmark files of the jobs of a default run; every rule's benchmark: path is its step's."""
    return [step.benchmark for step in PLAN.run_steps(get_extra_targets())]


REPORT_FIGURES = [
    "per_class_iou.png",
    "confusion_matrix.png",
    "examples.png",
    "runtimes.png",
    "summary.html",
    "summary.md",
    STAMP_FILE,  # written last: what they were made for (report/stamp.py)
]


def get_report_figure(name):
    """One of the configured cell's report files, in its cell's folder (PLAN.report_folder)."""
    return f"{PLAN.report_folder(CELL)}/{name}"


def get_report_figures():
    """The report's figures of the configured cell's result (rule report_figures)."""
    return [get_report_figure(name) for name in REPORT_FIGURES]


def expected_stamp(cell):
    """What this config's figures and tables of ``cell`` are stamped with (report/stamp.py)."""
    return Stamp(
        (cell.name,),
        PLAN.data,
        shape_text(INPUT_SHAPE),
        config_digest(json.loads(get_run_config_json(cell))),
    )


def get_matrix_stamp():
    """What this config's matrix (matrix.json, .md, matrix.png) is stamped with: its cells, in order."""
    return combined(map(expected_stamp, PLAN.matrix_cells))


def get_stamp_labels(labels, stamp_file, expected_stamp_of, command):
    """report()'s labels as a function that `snakemake --report` calls as it packs the file: ``labels``
    and what the part was made for (``expected_stamp_of()``, checked against ``stamp_file``; computed then,
    not at every parse). A part made for another config than this one, or missing, stops the report with
    the ``command`` that brings it up to date (Snakemake packs the files it finds without checking that
    they are current)."""

    def labels_with_stamp(wildcards):
        expected = expected_stamp_of()
        problem = stamp_problem(Path(stamp_file), expected, command)
        if problem:
            raise WorkflowError(f"error: {problem}")
        return {**labels, "made for": expected.subject()}

    return labels_with_stamp


def get_report_labels(figure):
    """The labels of one of the configured cell's report figures, its stamp among them."""
    return get_stamp_labels(
        {"figure": figure, "cell": CELL.name},
        get_report_figure(STAMP_FILE),
        lambda: expected_stamp(CELL),
        "snakemake --cores all results/result.json",
    )


def get_report_folder(wildcards, output):
    """Folder of the first output file."""
    return str(Path(output[0]).parent)


# ---------------------------------------------------------------- benchmark (rules/benchmark.smk)


def get_benchmark_variants():
    benchmark = config["benchmark"]
    return benchmark_variants(benchmark["variants"], benchmark["reference"], has_bf16())


def benchmark_cell(wildcards):
    """The cell of a benchmark_variant job: the configured model run by the job's variant."""
    return Cell(CELL.model, VARIANTS[wildcards.variant])


def get_benchmark_stamp():
    """What this config's benchmark table is stamped with: the configured model's timed variants, the data,
    the size, and a digest of the benchmark settings and each variant's config (report/stamp.py).
    """
    cells = [Cell(CELL.model, VARIANTS[name]) for name in get_benchmark_variants()]
    stamps = [expected_stamp(cell) for cell in cells]
    timed = config_digest(
        {
            "benchmark": config["benchmark"],
            "warmup": config["warmup"],
            "threads": config["threads"],
        }
    )
    return combined([*stamps, Stamp((), PLAN.data, shape_text(INPUT_SHAPE), timed)])


def get_benchmark_model(wildcards):
    return PLAN.model_file(benchmark_cell(wildcards))


def get_benchmark_model_companions(wildcards):
    return PLAN.model_companions(benchmark_cell(wildcards))


def get_benchmark_bins(wildcards):
    return get_spread_bins(config["benchmark"]["images"])


def get_benchmark_cell_predictions(wildcards):
    """The predictions of the timed frames by the benchmark variant's cell, where it is a cell of this config
    (the configured one, a matrix one) that ran as the benchmark runs it (not PyTorch on a GPU): the timed
    outputs must equal them (MLPerf's TEST01).
    """
    cell = benchmark_cell(wildcards)
    if cell not in PLAN.cells or get_backend_args(cell) != get_backend_args(
        cell, cpu=True
    ):
        return []
    frames = {PLAN.prep_bin(frame): frame for frame in FRAMES}
    return [
        PLAN.prediction(cell, frames[path]) for path in get_benchmark_bins(wildcards)
    ]


def get_benchmark_args(wildcards):
    """--backend/--precision (and the pytorch or onnxruntime flags) of benchmark_variant.py."""
    cell = benchmark_cell(wildcards)
    return f"--backend {cell.backend} --precision {cell.precision} {get_backend_args(cell, cpu=True)}"


def get_benchmark_files(suffix):
    return [
        artifacts.BENCHMARK_VARIANT.format(
            model=CELL.model, variant=name
        ).output.removesuffix(".json")
        + f".{suffix}"
        for name in get_benchmark_variants()
    ]
