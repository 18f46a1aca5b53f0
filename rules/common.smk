# The config, the frame list and the shards, and the functions the rules call (input functions
# named get_*), one section per rule file (Snakemake's lint keeps functions out of rule files).
# What is not about this workflow's config lives in the package: the paths of artifacts, logs and
# benchmark files in deeplabv3_pipeline/artifacts.py, what a backend needs in its module
# (deeplabv3_pipeline/backends/<name>_backend.py).
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The shared package, importable also without `pip install -e .`.
sys.path.insert(0, workflow.basedir)

from deeplabv3_pipeline import artifacts  # noqa: E402
from deeplabv3_pipeline.backends import (
    BACKENDS,
    REGISTRY,
    check_precision,
)  # noqa: E402
from deeplabv3_pipeline.checkpoint import cached_path, is_url  # noqa: E402
from deeplabv3_pipeline.plan import Plan, note_clamped_shards  # noqa: E402
from deeplabv3_pipeline.errors import (
    UserError,
    check_no_wildcard_braces,
    recompute_hint,
)  # noqa: E402
from deeplabv3_pipeline.headline import headline  # noqa: E402
from deeplabv3_pipeline.provenance import fingerprint, kept_result_problem  # noqa: E402
from deeplabv3_pipeline.ascend import atc_command  # noqa: E402
from deeplabv3_pipeline.cpu import has_bf16  # noqa: E402
from deeplabv3_pipeline.quantize import (
    held_out_files,
    select_calibration_files,
)  # noqa: E402
from deeplabv3_pipeline.variants import ON_REQUEST as ON_REQUEST_VARIANTS  # noqa: E402
from deeplabv3_pipeline.variants import VARIANTS as BENCHMARK_VARIANTS  # noqa: E402

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

INPUT_SHAPE = tuple(config["model"]["input_shape"])
BACKEND = config["backend"]
DEMO_CHECKPOINT = not config["model"]["checkpoint"]

CHECKPOINT_URL = (
    config["model"]["checkpoint"] if is_url(config["model"]["checkpoint"]) else ""
)
if DEMO_CHECKPOINT:
    CHECKPOINT = artifacts.DEMO_CHECKPOINT.output
elif CHECKPOINT_URL:
    CHECKPOINT = str(cached_path(CHECKPOINT_URL, Path(config["model"]["cache_dir"])))
else:
    CHECKPOINT = config["model"]["checkpoint"]
SIM_MODEL = artifacts.SIMPLIFY_ONNX.output
# Backend names as a wildcard constraint: the rules' {backend} takes exactly the registry's.
BACKEND_PATTERN = "|".join(BACKENDS)

PRECISION = config["precision"]
try:
    check_precision(BACKEND, PRECISION)
except UserError as error:
    raise WorkflowError(f"error: {error} (config precision)") from None

# The frames, their shards and every per-frame path (deeplabv3_pipeline/plan.py).
try:
    for path, what in (
        (config["dataset"]["root"], "dataset.root"),
        (CHECKPOINT, "model.checkpoint"),
        (config["model"]["cache_dir"], "model.cache_dir"),
        (config["model"]["config"], "model.config"),
        (workflow.basedir, "the workflow folder"),
    ):
        check_no_wildcard_braces(path, what)
    PLAN = Plan.from_config(config)
except UserError as error:
    raise WorkflowError(f"error: {error}") from None
note_clamped_shards(PLAN, config["shards"])
DEMO_DATA = PLAN.demo
FRAMES = list(PLAN.frames)
SHARDS = PLAN.shards
FRAMES_WITHOUT_TRAIN_IDS = list(PLAN.frames_without_train_ids)

if DEMO_DATA or DEMO_CHECKPOINT:
    synthetic = [
        what
        for what, flag in (("dataset", DEMO_DATA), ("checkpoint", DEMO_CHECKPOINT))
        if flag
    ]
    SYNTHETIC = " and ".join(synthetic)
    print(
        f"*** DEMO: SYNTHETIC {SYNTHETIC.upper()} (set dataset.root / model.checkpoint for the real "
        "Cityscapes run). The mIoU of this run is meaningless. ***",
        file=sys.stderr,
    )
else:
    SYNTHETIC = ""


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


def rule_name(stage, shard_index):
    """`preprocess` with one shard; `preprocess_shard0`, `preprocess_shard1`, ... with several."""
    return stage if len(SHARDS) == 1 else f"{stage}_shard{shard_index}"


def get_shard_images(shard_index):
    return [PLAN.image(frame) for frame in PLAN.shard_frames(shard_index)]


def get_shard_bins(shard_index):
    return [PLAN.prep_bin(frame) for frame in PLAN.shard_frames(shard_index)]


def get_shard_predictions(shard_index):
    """Prediction files of one shard, with `{backend}` left as a wildcard."""
    return [
        PLAN.prediction("{backend}", frame) for frame in PLAN.shard_frames(shard_index)
    ]


def get_all_bins():
    return [path for index in SHARDS for path in get_shard_bins(index)]


def get_predictions(backend):
    """Every frame's prediction file of ``backend``, in frame order."""
    return PLAN.predictions(backend)


def get_image_files():
    return [PLAN.image(frame) for frame in FRAMES]


def get_label_ids_files():
    return [PLAN.label_ids(frame) for frame in FRAMES_WITHOUT_TRAIN_IDS]


def get_made_train_ids():
    return [PLAN.made_train_ids(frame) for frame in FRAMES_WITHOUT_TRAIN_IDS]


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


# ---------------------------------------------------------------- backends (backends/<name>_backend.py)


def backend_precision(backend):
    """The precision ``backend`` runs: config `precision` (checked above for `backend`); a compared
    backend that lacks it runs its default (its first: fp32, or fp16 for ascend), and its
    result.json and the comparison say so."""
    spec = REGISTRY[backend]
    return PRECISION if PRECISION in spec.precisions else spec.default_precision


def get_model_steps(backend):
    """The steps that make the model ``backend`` runs at its precision (none: the checkpoint)."""
    return REGISTRY[backend].model_steps(backend_precision(backend), config)


def get_model_file(backend, precision, settings):
    """The model ``backend`` runs at ``precision`` under config ``settings``: the last model step's
    output, or the checkpoint (a backend without model steps runs it)."""
    steps = REGISTRY[backend].model_steps(precision, settings)
    return steps[-1].output if steps else CHECKPOINT


def get_model(backend):
    return get_model_file(backend, backend_precision(backend), config)


def get_infer_model(wildcards):
    """The model file a backend runs: its last model step's output, or the checkpoint (pytorch)."""
    return get_model(wildcards.backend)


def get_model_companions(backend, precision, settings):
    """Files the runtime reads beside that model (artifacts.companion_files)."""
    steps = REGISTRY[backend].model_steps(precision, settings)
    return artifacts.companion_files(steps[-1]) if steps else []


def get_infer_model_companions(wildcards):
    backend = wildcards.backend
    return get_model_companions(backend, backend_precision(backend), config)


def get_backend_args(backend):
    """The flags of scripts/infer.py (and benchmark_variant.py) that ``backend`` needs from the config."""
    return shlex.join(REGISTRY[backend].infer_args(config))


def get_model_reports(wildcards):
    """(result.json key, JSON) of every model step of the backend that writes one beside its model
    (quantization settings, the Winograd rewrite, the TensorRT engine build)."""
    return [
        (step.report, artifacts.report_path(step.output))
        for step in get_model_steps(wildcards.backend)
        if step.report
    ]


def check_backend_tools():
    """Before any job runs (not in a dry run): what the configured backend needs must be here. Under
    a cluster executor the jobs run on other nodes (a GPU or NPU partition), which this machine cannot
    speak for: there each job reports what its node lacks, in one line."""
    if not workflow.local_exec:
        return
    problems = REGISTRY[BACKEND].environment_problems(config)
    if problems:
        raise WorkflowError(
            f"error: backend {BACKEND} cannot run here: "
            + "; ".join(problems)
            + ". `snakemake -n -p` shows the planned commands without it."
        )


def print_result_summary():
    """At the end of a successful run: the headline figures of results/result.json."""
    path = Path("results/result.json")
    if path.is_file():
        print(f"{path}: {headline(json.loads(path.read_text()))}", file=sys.stderr)


def get_final_targets():
    return ["results/result.json"] + [
        step.output for step in REGISTRY[BACKEND].extra_targets(config)
    ]


def kept(files, key):
    """``files`` as they are, or temp() (deleted once no job of the run needs them) per config `storage`."""
    return files if config["storage"][key] else temp(files)


# ---------------------------------------------------------------- inputs (rules/data.smk)


def get_source_fingerprint(paths):
    """A param that changes when any of these source files (not made by the workflow) is replaced,
    whether the new file's mtime is newer or older (provenance.fingerprint; one stat per file).
    """
    return fingerprint(paths) if paths else ""


def get_source_images(shard_index):
    """The shard's images where they are the dataset's own (the demo's are made by a rule)."""
    return [] if DEMO_DATA else get_shard_images(shard_index)


def get_source_label_ids():
    return [] if DEMO_DATA else get_label_ids_files()


def get_dataset_train_ids_files():
    """The trainIds labels evaluation reads from the dataset itself (not made by rule labels)."""
    made = set(get_made_train_ids())
    return [path for path in get_train_ids_files() if path not in made]


def get_source_checkpoint():
    """The checkpoint where it is a local file of the user's (a URL's is fetched and sha256-checked, the
    demo's is made by a rule)."""
    return [] if DEMO_CHECKPOINT or CHECKPOINT_URL else [CHECKPOINT]


def get_dataset_root(wildcards, output):
    """<root>/leftImg8bit/<split>/<city>/file -> <root>, for the first output file."""
    return str(Path(output[0]).parents[3])


# ---------------------------------------------------------------- models (rules/model.smk)


def get_winograd_check_bins(wildcards):
    """winograd.check_images prep bins spread evenly over the sorted image list."""
    return get_spread_bins(config["winograd"]["check_images"])


def get_atc_command(wildcards, input, output):
    """The guide's atc call for one soc_version, as one shell line (shown by `snakemake -n -p`)."""
    command = atc_command(
        Path(input[0]),
        Path(output[0]),
        wildcards.soc,
        INPUT_SHAPE,
        backend_precision("ascend"),
        config["ascend"]["atc_args"],
    )
    return shlex.join(command)


def get_engine_source(wildcards):
    """What a TensorRT engine is built from: the output of the step before build_engine in the
    tensorrt backend's steps (the simplified ONNX, its fp16 conversion, or the symmetric Q/DQ model).
    """
    steps = REGISTRY["tensorrt"].model_steps(wildcards.precision, config)
    return steps[-2].output


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


def get_min_agreement(wildcards):
    """int8.tolerance.min_pixel_agreement, 0 (no gate) when unset."""
    return config["int8"]["tolerance"]["min_pixel_agreement"] or 0.0


def quantizer_outputs(step):
    """The model, the OpenVINO IR's weights file where there is one, and the settings JSON."""
    weights = artifacts.companion_files(step)
    outputs = {"model": step.output} | ({"weights": weights[0]} if weights else {})
    return outputs | {"report": artifacts.report_path(step.output)}


# ---------------------------------------------------------------- inference (rules/infer.smk)


def get_prediction_folder(wildcards, output):
    """Folder of an inference job's predictions (infer.py names them {stem}_0.bin there)."""
    return str(Path(output.predictions[0]).parent)


def get_shard_summaries(wildcards):
    return [PLAN.shard_summary(wildcards.backend, index) for index in SHARDS]


# ---------------------------------------------------------------- evaluation and comparison (rules/evaluate.smk)


def get_evaluate_predictions(wildcards):
    """Every frame's prediction of the backend. First the result kept from an earlier run must still
    describe the files it was computed from: Snakemake would keep it though a prediction it lists is
    missing (it does not remake an intermediate whose result exists), so that is an error here naming
    the file and the command that recomputes it."""
    backend = wildcards.backend
    predictions = get_predictions(backend)
    if forced_run():
        return predictions  # the run recomputes what it is told, the advised command among them
    problem = kept_result_problem(
        PLAN.result(backend),
        [*predictions, *get_train_ids_files()],
        json.loads(get_run_config_json(backend)),
        may_be_missing=[] if config["storage"]["keep_predictions"] else predictions,
        sources=[*get_dataset_train_ids_files(), *get_source_checkpoint()],
    )
    if problem:
        raise WorkflowError(f"error: {problem}")
    return predictions


def forced_run():
    """Whether this run was told to recompute something (--forcerun, --forceall, --force). Not
    --rerun-incomplete: the default profile always sets it (profiles/default)."""
    settings = getattr(workflow, "dag_settings", None)
    return bool(
        settings and (settings.forcerun or settings.forceall or settings.forcetargets)
    )


def get_verification(cells=None):
    """The ONNX model's check against PyTorch (model.verify), where one of ``cells`` ((backend,
    precision) pairs; default the configured one) runs a model made from the ONNX export. The final
    steps wait for it (the published result, the comparison, the benchmark), so a change of
    model.verify reruns only the check and those cheap steps.
    """
    cells = cells or [(BACKEND, backend_precision(BACKEND))]
    exported = any(
        artifacts.EXPORT_ONNX in REGISTRY[backend].model_steps(precision, config)
        for backend, precision in cells
    )
    return (
        [artifacts.VERIFY_ONNX.output] if config["model"]["verify"] and exported else []
    )


# Keys that never change a backend's result.json: leaving them out of evaluate's params keeps a
# change to them (the gate, the comparison, the benchmark, job sizes, what is kept on disk, which
# backend is published, whether the export is checked) from re-evaluating every backend.
NOT_IN_RESULT = ("backend", "benchmark", "compare", "expect", "resources", "storage")
NOT_IN_RESULT_MODEL = ("verify", "verify_tolerance")


def get_run_config_json(backend):
    """The config recorded in ``backend``'s result.json (and a param of its `evaluate`: a change reruns
    it): without the keys of NOT_IN_RESULT, and without the other backends' own sections (a change of
    tensorrt.workspace_gib does not re-evaluate ONNX Runtime)."""
    others = set(REGISTRY) - {backend}
    used = {
        key: value
        for key, value in config.items()
        if key not in NOT_IN_RESULT and key not in others
    }
    used["model"] = {
        key: value
        for key, value in config["model"].items()
        if key not in NOT_IN_RESULT_MODEL
    }
    return json.dumps(used, sort_keys=True)


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


def get_synthetic_note():
    return shlex.join(["--synthetic", SYNTHETIC]) if SYNTHETIC else ""


def get_model_report_files(wildcards):
    return [path for _, path in get_model_reports(wildcards)]


def get_model_report_args(wildcards):
    """evaluate.py --model-report KEY=JSON for each model report (none: no flag)."""
    reports = [f"{key}={path}" for key, path in get_model_reports(wildcards)]
    return shlex.join(["--model-report", *reports]) if reports else ""


def get_expect_args():
    """select_result.py flags of the configured mIoU gate (none when expect.miou is unset)."""
    expect = config["expect"]
    return (
        ""
        if expect["miou"] is None
        else f"--expect-miou {expect['miou']} --tolerance {expect['tolerance']}"
    )


def get_compared_backends():
    return list(
        dict.fromkeys([config["compare"]["reference"], *config["compare"]["backends"]])
    )


def get_compared_results():
    return [PLAN.result(backend) for backend in get_compared_backends()]


def get_compared_predictions():
    return [
        path for backend in get_compared_backends() for path in get_predictions(backend)
    ]


# ---------------------------------------------------------------- report (rules/report.smk)


def get_run_steps():
    """The steps of a default run (results/result.json), in pipeline order: the inputs, the steps that
    make the configured backend's models, inference and evaluation."""
    steps = []
    if DEMO_CHECKPOINT:
        steps.append(artifacts.DEMO_CHECKPOINT)
    if FRAMES_WITHOUT_TRAIN_IDS:
        steps.append(artifacts.LABELS)
    steps += [artifacts.PREPROCESS.format(shard=index) for index in SHARDS]
    spec = REGISTRY[BACKEND]
    steps += list(dict.fromkeys(get_model_steps(BACKEND) + spec.extra_targets(config)))
    steps += [artifacts.INFER.format(backend=BACKEND, shard=index) for index in SHARDS]
    steps.append(artifacts.EVALUATE.format(backend=BACKEND))
    return steps


def get_report_benchmarks():
    """Benchmark files of the jobs of a default run; every rule's benchmark: path is its step's."""
    return [step.benchmark for step in get_run_steps()]


def get_report_figures():
    """The report's figures of the configured backend's result (rule report_figures)."""
    names = [
        "per_class_iou.png",
        "confusion_matrix.png",
        "examples.png",
        "runtimes.png",
        "summary.html",
        "summary.md",
    ]
    return [f"results/report/{name}" for name in names]


def get_report_targets():
    """The files of results/report/, and the comparison and the benchmark (with their figures)
    once made: `snakemake --report` then finds every figure of the run, and they are kept current.
    """
    targets = get_report_figures()
    if Path("results/compare.json").exists():
        targets += ["results/compare.json", "results/report/backends.png"]
    if Path(artifacts.BENCHMARK.output).exists():
        targets += [artifacts.BENCHMARK.output, "results/report/benchmark.html"]
    return targets


def get_report_folder(wildcards, output):
    """Folder of the first output file."""
    return str(Path(output[0]).parent)


# ---------------------------------------------------------------- benchmark (rules/benchmark.smk)


def get_benchmark_variants():
    """config benchmark.variants, or every variant this CPU runs (bf16 only with native BF16),
    the reference first."""
    chosen = config["benchmark"]["variants"] or [
        name
        for name in BENCHMARK_VARIANTS
        if name not in ON_REQUEST_VARIANTS
        and (BENCHMARK_VARIANTS[name][1] != "bf16" or has_bf16())
    ]
    return list(dict.fromkeys([config["benchmark"]["reference"], *chosen]))


def get_benchmark_model(wildcards):
    """The variant's model: the Winograd graph, or what its backend runs at its precision with
    winograd.enabled off (so that "openvino-fp32" is the direct model whatever the config says).
    """
    backend, precision, winograd = BENCHMARK_VARIANTS[wildcards.variant]
    if winograd:
        return artifacts.WINOGRAD_ONNX.output
    return get_model_file(backend, precision, direct_config())


def get_benchmark_model_companions(wildcards):
    backend, precision, winograd = BENCHMARK_VARIANTS[wildcards.variant]
    return [] if winograd else get_model_companions(backend, precision, direct_config())


def direct_config():
    """The config with winograd.enabled off: a variant without -winograd runs the direct model."""
    return {**config, "winograd": {**config["winograd"], "enabled": False}}


def get_benchmark_bins(wildcards):
    return get_spread_bins(config["benchmark"]["images"])


def get_benchmark_args(wildcards):
    """--backend/--precision (and the pytorch or onnxruntime flags) of benchmark_variant.py."""
    backend, precision, _ = BENCHMARK_VARIANTS[wildcards.variant]
    return f"--backend {backend} --precision {precision} {get_backend_args(backend)}"


def get_benchmark_files(suffix):
    return [f"results/benchmark/{name}.{suffix}" for name in get_benchmark_variants()]
