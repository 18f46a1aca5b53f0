# Helpers shared by the rules/*.smk files (config, the image list, shards, per-backend inputs).
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

from deeplabv3_pipeline.backends import (
    PRECISIONS,
    check_precision,
    default_precision,
)  # noqa: E402
from deeplabv3_pipeline.checkpoint import cached_path, is_url  # noqa: E402
from deeplabv3_pipeline.cpu import has_bf16  # noqa: E402
from deeplabv3_pipeline.cityscapes import (
    dataset_id,
    discover_frames,
    shard,
)  # noqa: E402
from deeplabv3_pipeline.demo import demo_frames  # noqa: E402
from deeplabv3_pipeline.errors import UserError  # noqa: E402
from deeplabv3_pipeline.headline import headline  # noqa: E402
from deeplabv3_pipeline.quantize import (
    held_out_files,
    select_calibration_files,
)  # noqa: E402
from deeplabv3_pipeline.ascend import atc_command, missing_tool  # noqa: E402

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

SPLIT = config["dataset"]["split"]
INPUT_SHAPE = tuple(config["model"]["input_shape"])
BACKEND = config["backend"]
SHARDS = list(range(config["shards"]))

DEMO_DATA = not config["dataset"]["root"]
DEMO_CHECKPOINT = not config["model"]["checkpoint"]
DATASET_ROOT = (
    Path("results/demo/cityscapes") if DEMO_DATA else Path(config["dataset"]["root"])
)
# What derives from the frames lives under DATA (dataset and split): another root or split
# never reads or overwrites it, and switching back finds it again.
DATASET_ID = "demo" if DEMO_DATA else dataset_id(DATASET_ROOT)
DATA = f"{DATASET_ID}/{SPLIT}"
PREP_DIR = f"results/prep_dataset/{DATA}"
INFER_DIR = f"results/infer/{DATA}"
MADE_LABELS_DIR = f"results/labels/{DATA}"

CHECKPOINT_URL = (
    config["model"]["checkpoint"] if is_url(config["model"]["checkpoint"]) else ""
)
if DEMO_CHECKPOINT:
    CHECKPOINT = "results/demo/checkpoint.pth"
elif CHECKPOINT_URL:
    CHECKPOINT = str(cached_path(CHECKPOINT_URL, Path(config["model"]["cache_dir"])))
else:
    CHECKPOINT = config["model"]["checkpoint"]
ONNX_MODEL = "results/models/deeplabv3.onnx"
SIM_MODEL = "results/models/deeplabv3_sim_bs1.onnx"

PRECISION = config["precision"]
try:
    check_precision(BACKEND, PRECISION)
except UserError as error:
    raise WorkflowError(f"error: {error} (config precision)") from None

try:
    FRAMES = (
        demo_frames(config["demo"]["images"])
        if DEMO_DATA
        else discover_frames(DATASET_ROOT, SPLIT)
    )
except UserError as error:
    raise WorkflowError(f"error: {error}") from None

# Frames whose dataset has no trainIds PNG (`labels` makes those under results/): one file
# check per frame, once per parse, not once per helper call.
FRAMES_WITHOUT_TRAIN_IDS = [
    frame
    for frame in FRAMES
    if DEMO_DATA or not frame.train_ids(DATASET_ROOT, SPLIT).exists()
]

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


def dataset_root(wildcards, output):
    """<root>/leftImg8bit/<split>/<city>/file -> <root>, for the first output file."""
    return str(Path(output[0]).parents[3])


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


def shard_frames(shard_index):
    return shard(FRAMES, shard_index, len(SHARDS))


def shard_images(shard_index):
    return [
        str(frame.image(DATASET_ROOT, SPLIT)) for frame in shard_frames(shard_index)
    ]


def shard_bins(shard_index):
    return [f"{PREP_DIR}/{frame.stem}.bin" for frame in shard_frames(shard_index)]


def shard_predictions(shard_index):
    """Prediction files of one shard, with `{backend}` left as a wildcard."""
    return [
        f"{INFER_DIR}/{{backend}}/{frame.stem}_0.bin"
        for frame in shard_frames(shard_index)
    ]


def all_bins():
    return [path for index in SHARDS for path in shard_bins(index)]


def all_predictions(wildcards):
    return predictions_of(wildcards.backend)


def shard_summaries(wildcards):
    return [f"{INFER_DIR}/{wildcards.backend}/shards/{index}.json" for index in SHARDS]


def predictions_of(backend):
    """Every frame's prediction file of ``backend``, in frame order."""
    return [f"{INFER_DIR}/{backend}/{frame.stem}_0.bin" for frame in FRAMES]


def image_files():
    return [str(frame.image(DATASET_ROOT, SPLIT)) for frame in FRAMES]


def label_ids_files():
    return [
        str(frame.label_ids(DATASET_ROOT, SPLIT)) for frame in FRAMES_WITHOUT_TRAIN_IDS
    ]


def made_train_ids():
    return [
        f"{MADE_LABELS_DIR}/{frame.city}/{frame.frame}_gtFine_labelTrainIds.png"
        for frame in FRAMES_WITHOUT_TRAIN_IDS
    ]


def train_ids_files():
    """Every frame's trainIds label: the dataset's own where it has one, else the made one."""
    missing = set(FRAMES_WITHOUT_TRAIN_IDS)
    return made_train_ids() + [
        str(frame.train_ids(DATASET_ROOT, SPLIT))
        for frame in FRAMES
        if frame not in missing
    ]


INT8_MODEL = "results/models/deeplabv3_sim_bs1_int8.onnx"
INT8_OPENVINO_MODEL = "results/models/deeplabv3_sim_bs1_int8_ov.xml"
# precision: int8 -> the model each backend runs (the others keep their own model and precision).
INT8_MODELS = {"onnxruntime": INT8_MODEL, "openvino": INT8_OPENVINO_MODEL}


def spread_bins(count):
    """``count`` prep bins spread evenly over the sorted image list (none for 0)."""
    if not count:
        return []
    chosen = select_calibration_files([Path(path) for path in all_bins()], count)
    return [str(path) for path in chosen]


def calibration_bins(wildcards):
    """int8.calibration_images prep bins spread evenly over the sorted image list."""
    return spread_bins(config["int8"]["calibration_images"])


def check_bins(wildcards):
    """int8.check_images bins not used for calibration (calibration ones when none are left)."""
    held_out = held_out_files(
        [Path(path) for path in all_bins()],
        [Path(path) for path in calibration_bins(wildcards)],
        config["int8"]["check_images"],
    )
    return [str(path) for path in held_out]


def calibration_count(wildcards):
    return config["int8"]["calibration_images"]


def check_args(wildcards, input):
    """--check-images/--check-data of quantize_onnx.py and winograd_onnx.py (no check without check files)."""
    if not input.check:
        return "--check-images 0"
    return f"--check-images {len(input.check)} --check-data {' '.join(input.check)}"


def min_agreement(wildcards):
    """int8.tolerance.min_pixel_agreement, 0 (no gate) when unset."""
    return config["int8"]["tolerance"]["min_pixel_agreement"] or 0.0


def quantization_report(wildcards):
    """The int8 model's settings json, recorded in result.json (none for fp32)."""
    model = infer_model(wildcards)
    return (
        [str(Path(model).with_suffix(".json"))] if model in INT8_MODELS.values() else []
    )


def winograd_report(wildcards):
    """The Winograd rewrite's report json, recorded in result.json (none for the direct model)."""
    model = infer_model(wildcards)
    return [str(Path(model).with_suffix(".json"))] if model == WINOGRAD_MODEL else []


WINOGRAD_MODEL = "results/models/deeplabv3_sim_bs1_winograd.onnx"
# OpenVINO fuses the transforms' elementwise chains and gains 1.5x at 1024x2048; ONNX Runtime
# runs every Add/Sub/Slice as its own pass and was slower than direct, at 10.8 GB (docs/performance.md).
WINOGRAD_BACKENDS = ("openvino",)


def backend_precision(backend):
    """The precision ``backend`` runs: config `precision` (checked above for `backend`); a compared
    backend that lacks it runs its default (its first: fp32, or fp16 for ascend), and its
    result.json and the comparison say so."""
    return PRECISION if PRECISION in PRECISIONS[backend] else default_precision(backend)


def uses_winograd(backend):
    """fp32 openvino with winograd.enabled runs rule winograd_onnx's model."""
    return (
        config["winograd"]["enabled"]
        and backend_precision(backend) == "fp32"
        and backend in WINOGRAD_BACKENDS
    )


if config["winograd"]["enabled"] and not uses_winograd(BACKEND):
    print(
        f"note: winograd.enabled applies to backend openvino at precision fp32; backend {BACKEND} at "
        f"precision {PRECISION} runs its usual model",
        file=sys.stderr,
    )


def winograd_check_bins(wildcards):
    """winograd.check_images prep bins spread evenly over the sorted image list."""
    return spread_bins(config["winograd"]["check_images"])


def om_model(soc):
    return f"results/models/deeplabv3_bs1_{soc}.om"


def infer_model(wildcards):
    """The model file a backend runs: sim ONNX, the checkpoint (pytorch) or the first soc's .om (ascend)."""
    if wildcards.backend == "pytorch":
        return CHECKPOINT
    if wildcards.backend == "ascend":
        return om_model(config["ascend"]["soc_versions"][0])
    if backend_precision(wildcards.backend) == "int8":
        return INT8_MODELS[wildcards.backend]
    if uses_winograd(wildcards.backend):
        return WINOGRAD_MODEL
    return SIM_MODEL


def backend_args(backend):
    """Backend-specific flags of scripts/infer.py (and benchmark_variant.py)."""
    if backend == "pytorch":
        return f"--model-config {config['model']['config']} --input-shape {INPUT_SHAPE[0]} {INPUT_SHAPE[1]}"
    if backend == "onnxruntime":
        return "--providers " + " ".join(config["onnxruntime"]["providers"])
    if backend == "ascend":
        ascend = config["ascend"]
        return f"--device {ascend['device']} --ais-bench {shlex.quote(ascend['ais_bench'])}"
    return ""


def atc_shell_command(wildcards, input, output):
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


def prediction_folder(wildcards, output):
    """Folder of an inference job's predictions (infer.py names them {stem}_0.bin there)."""
    return str(Path(output.predictions[0]).parent)


def dataset_json():
    """What the frames are, recorded in result.json."""
    return json.dumps(
        {
            "root": str(DATASET_ROOT),
            "split": SPLIT,
            "id": DATASET_ID,
            "frames": len(FRAMES),
        }
    )


def synthetic_note():
    return f"--synthetic '{SYNTHETIC}'" if SYNTHETIC else ""


# Keys that never change a backend's result.json: leaving them out of evaluate's params
# keeps a change to them (the gate, the comparison, the benchmark, job sizes, what is kept on
# disk, which backend is published)
# from re-evaluating every backend.
NOT_IN_RESULT = ("backend", "benchmark", "compare", "expect", "resources", "storage")


def run_config_json():
    """The config recorded in result.json (and a param of `evaluate`: a change reruns it)."""
    used = {key: value for key, value in config.items() if key not in NOT_IN_RESULT}
    return json.dumps(used, sort_keys=True)


def expect_args():
    """select_result.py flags of the configured mIoU gate (none when expect.miou is unset)."""
    expect = config["expect"]
    return (
        ""
        if expect["miou"] is None
        else f"--expect-miou {expect['miou']} --tolerance {expect['tolerance']}"
    )


def compared_backends():
    return list(
        dict.fromkeys([config["compare"]["reference"], *config["compare"]["backends"]])
    )


def compared_results():
    return [f"results/{backend}/result.json" for backend in compared_backends()]


def compared_predictions():
    return [path for backend in compared_backends() for path in predictions_of(backend)]


for backend in compared_backends():
    if backend_precision(backend) != PRECISION:
        print(
            f"note: compared backend {backend} has no precision {PRECISION}: it runs "
            f"{backend_precision(backend)} (the comparison's inference_precision column)",
            file=sys.stderr,
        )


def check_backend_tools():
    """Before any job runs: the Ascend tools must exist when the Ascend backend is asked for."""
    if BACKEND != "ascend":
        return
    commands = (["atc"], shlex.split(config["ascend"]["ais_bench"]))
    problems = [problem for problem in map(missing_tool, commands) if problem]
    if problems:
        raise WorkflowError(
            "error: backend ascend needs CANN's tools: "
            + "; ".join(problems)
            + ". `snakemake -n -p` shows the planned commands without them."
        )


def print_result_summary():
    """At the end of a successful run: the headline figures of results/result.json."""
    path = Path("results/result.json")
    if path.is_file():
        print(f"{path}: {headline(json.loads(path.read_text()))}", file=sys.stderr)


def final_targets():
    targets = ["results/result.json"]
    if BACKEND == "ascend":
        targets += [om_model(soc) for soc in config["ascend"]["soc_versions"]]
    return targets


def report_benchmarks():
    """Benchmark files of the jobs of a default run (results/result.json), in pipeline order.

    Mirrors the rules' benchmark: paths; tests/test_report.py checks it against a demo run.
    """
    files = []
    if DEMO_CHECKPOINT:
        files.append("results/benchmarks/demo_checkpoint.tsv")
    if FRAMES_WITHOUT_TRAIN_IDS:
        files.append("results/benchmarks/labels.tsv")
    files += [f"results/benchmarks/preprocess/shard{index}.tsv" for index in SHARDS]
    if BACKEND != "pytorch":
        files += [
            "results/benchmarks/export_onnx.tsv",
            "results/benchmarks/simplify_onnx.tsv",
        ]
    if backend_precision(BACKEND) == "int8":
        engine = "onnx" if BACKEND == "onnxruntime" else "openvino"
        files.append(f"results/benchmarks/quantize_{engine}.tsv")
    if uses_winograd(BACKEND):
        files.append("results/benchmarks/winograd_onnx.tsv")
    if BACKEND == "ascend":
        files += [
            f"results/benchmarks/atc/{soc}.tsv"
            for soc in config["ascend"]["soc_versions"]
        ]
    files += [
        f"results/benchmarks/infer/{BACKEND}/shard{index}.tsv" for index in SHARDS
    ]
    files.append(f"results/benchmarks/evaluate/{BACKEND}.tsv")
    return files


def report_targets():
    """The files of results/report/, and the comparison and the benchmark (with their figures)
    once made: `snakemake --report` then finds every figure of the run, and they are kept current.
    """
    names = [
        "per_class_iou.png",
        "confusion_matrix.png",
        "examples.png",
        "runtimes.png",
        "summary.html",
        "summary.md",
    ]
    targets = [f"results/report/{name}" for name in names]
    if Path("results/compare.json").exists():
        targets += ["results/compare.json", "results/report/backends.png"]
    if Path("results/benchmark.json").exists():
        targets += ["results/benchmark.json", "results/report/benchmark.html"]
    return targets


def report_folder(wildcards, output):
    """Folder of the first output file."""
    return str(Path(output[0]).parent)


def kept(files, key):
    """``files`` as they are, or temp() (deleted once no job of the run needs them) per config `storage`."""
    return files if config["storage"][key] else temp(files)


# ---------------------------------------------------------------- benchmark (rules/benchmark.smk)

# variant -> (backend, precision, model file it runs); pytorch runs the checkpoint.
BENCHMARK_VARIANTS = {
    "pytorch-fp32": ("pytorch", "fp32", CHECKPOINT),
    "pytorch-bf16": ("pytorch", "bf16", CHECKPOINT),
    "onnxruntime-fp32": ("onnxruntime", "fp32", SIM_MODEL),
    "onnxruntime-int8": ("onnxruntime", "int8", INT8_MODEL),
    "onnxruntime-fp32-winograd": ("onnxruntime", "fp32", WINOGRAD_MODEL),
    "openvino-fp32": ("openvino", "fp32", SIM_MODEL),
    "openvino-bf16": ("openvino", "bf16", SIM_MODEL),
    "openvino-int8": ("openvino", "int8", INT8_OPENVINO_MODEL),
    "openvino-fp32-winograd": ("openvino", "fp32", WINOGRAD_MODEL),
}
# Asked for by name only: ONNX Runtime runs the Winograd graph slower than the direct one.
ON_REQUEST_VARIANTS = ("onnxruntime-fp32-winograd",)


def benchmark_variants():
    """config benchmark.variants, or every variant this CPU runs (bf16 only with native BF16),
    the reference first."""
    chosen = config["benchmark"]["variants"] or [
        name
        for name in BENCHMARK_VARIANTS
        if name not in ON_REQUEST_VARIANTS
        and (BENCHMARK_VARIANTS[name][1] != "bf16" or has_bf16())
    ]
    return list(dict.fromkeys([config["benchmark"]["reference"], *chosen]))


def benchmark_model(wildcards):
    return BENCHMARK_VARIANTS[wildcards.variant][2]


def benchmark_bins(wildcards):
    return spread_bins(config["benchmark"]["images"])


def benchmark_args(wildcards):
    """--backend/--precision (and the pytorch or onnxruntime flags) of benchmark_variant.py."""
    backend, precision, _ = BENCHMARK_VARIANTS[wildcards.variant]
    return f"--backend {backend} --precision {precision} {backend_args(backend)}"


def benchmark_files(suffix):
    return [f"results/benchmark/{name}.{suffix}" for name in benchmark_variants()]
