#!/usr/bin/env python3
"""The prepared GPU check: DeepLabV3 in PyTorch on CUDA (fp32 with TF32 off, fp16, bf16, fp16 compiled by
torch.compile) against the CPU's fp32 reference, on a machine with a GPU, its own torch and no network.

Here (PyPI reachable), once: the wheels such a machine lacks, within what a device call carries:

    python scripts/gpu_check.py wheels --output .gpu_check/wheels

There, from the repository root (README "NVIDIA GPUs" has the device call):

    PYTHONPATH=. python3 scripts/gpu_check.py run --wheels .gpu_check/wheels --out results/gpu_check

``run`` installs what the machine lacks from the wheels (into ``<work>/site``, nothing of the machine's
changed), makes the demo frames at 1024x2048, their labels and ``.bin`` files and the trained demo
checkpoint with the workflow's own stage CLIs, runs the CPU reference and each GPU run through
``infer.py`` and ``evaluate.py`` as the workflow's rules do, and writes three files to ``--out``:
``benchmark.md`` and ``gpu_check.json`` (the figures) and ``cells_and_logs.tar.gz`` (the cells'
``summary.json`` and ``result.json`` and every step's log, which ``--work`` holds unpacked).
``--dry-run``: what it would install, stand in for and run, without running it. ``--device cpu`` runs
the same steps on the CPU (the test suite's small run of the check).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from deeplabv3_pipeline.benchmark import gpu_check
from deeplabv3_pipeline.devices import device_problems, parse_device
from deeplabv3_pipeline.errors import UserError, run_cli
from deeplabv3_pipeline.io.binio import write_json, write_text

REPO = Path(__file__).resolve().parent.parent
CPU_INSTEAD = "pass --device cpu (the steps' test)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("wheels", help="download the wheels a GPU machine lacks (here, with PyPI)")
    wheels.add_argument("--output", type=Path, default=Path(".gpu_check/wheels"))
    wheels.add_argument("--skip", nargs="*", default=[], help="projects the GPU machine has (left out)")
    run = commands.add_parser("run", help="the check (there, on the GPU machine)")
    run.add_argument("--wheels", type=Path, default=Path(".gpu_check/wheels"))
    run.add_argument("--work", type=Path, default=Path(".gpu_check/work"), help="frames, models, predictions")
    run.add_argument("--out", type=Path, default=Path(".gpu_check/out"), help="figures, results, logs")
    run.add_argument("--images", type=int, default=8)
    run.add_argument("--shape", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    run.add_argument("--device", default="cuda:0", help="cuda, cuda:<index>, or cpu (the steps' own test)")
    run.add_argument("--runs", nargs="+", default=list(gpu_check.RUNS), help=", ".join(gpu_check.RUNS))
    run.add_argument(
        "--checkpoint", default="trained", help="trained or random (the demo's, made here), or a checkpoint file"
    )
    run.add_argument("--model-config", help="the checkpoint's mmseg config (default: config.yaml's model.config)")
    run.add_argument("--warmup", type=int, default=3, help="untimed images per run (cuDNN's algorithm search)")
    run.add_argument("--stand-in", nargs="*", default=[], choices=sorted(gpu_check.IMPORT_ONLY),
                     help="stand in for these even where present (tests)")  # fmt: skip
    run.add_argument("--dry-run", action="store_true")
    return parser.parse_args(argv)


def tree_bytes() -> int:
    """The working tree a device call carries: git's tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    return gpu_check.carried_bytes([REPO / os.fsdecode(name) for name in listed if name])


def download(args: argparse.Namespace) -> int:
    skipped = {name.lower() for name in args.skip}
    specs = [
        spec
        for spec in gpu_check.wheel_requirements(REPO / "requirements.txt")
        if spec.split("==")[0].lower() not in skipped
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    for command in gpu_check.download_commands(specs, args.output):
        subprocess.run(command, check=True)
    wheels = sorted(args.output.glob("*.whl"))
    problem = gpu_check.budget_problem(wheels, tree_bytes())
    if problem:
        raise UserError(problem)
    print(f"{len(wheels)} wheels, {gpu_check.carried_bytes(wheels) / gpu_check.MIB:.1f} MiB in {args.output}")
    return 0


def preflight(args: argparse.Namespace, site: Path, stand_ins: Path) -> gpu_check.Preflight:
    """Install the missing modules that have a wheel into ``site``; stand in for the import-only ones."""
    with_wheel, import_only, required = gpu_check.missing_modules()
    import_only = sorted(set(import_only) | set(args.stand_in))
    wheels = sorted(args.wheels.glob("*.whl")) if args.wheels.is_dir() else []
    found = {module: gpu_check.wheel_for(gpu_check.WHEELS[module], wheels) for module in with_wheel}
    missing = required + [module for module, wheel in found.items() if wheel is None]
    if missing:
        raise UserError(
            f"this machine lacks {', '.join(missing)} and {args.wheels} has no wheel of them: run `python "
            "scripts/gpu_check.py wheels` where PyPI is reachable and carry its folder (required here: "
            f"{', '.join(gpu_check.REQUIRED)})"
        )
    files = sorted({str(wheel) for wheel in found.values() if wheel is not None})
    if files and not args.dry_run:
        site.mkdir(parents=True, exist_ok=True)
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(site)]
        subprocess.run([*install, *files], check=True)
    if not args.dry_run:
        gpu_check.write_stand_ins(import_only, stand_ins)
    return gpu_check.Preflight(sorted(found), import_only)


def run_step(step: gpu_check.StageRun, env: dict[str, str], logs: Path) -> float:
    """Run one stage CLI from the repository root, its output to its log; seconds taken."""
    log = logs / (step.name.replace(" ", "_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        completed = subprocess.run(step.command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise UserError(f"step {step.name} failed (exit {completed.returncode}; {log}): {' | '.join(tail)}")
    print(f"{step.name}: {seconds:.1f} s", flush=True)
    return seconds


def run_steps(
    steps: list[gpu_check.StageRun], args: argparse.Namespace, layout: gpu_check.Layout, config: dict, env: dict
) -> tuple[dict[str, float], dict[str, str], str]:
    """Every step in order: (seconds per step, the error of each GPU run that failed, the checkpoint used).
    A GPU run's failure skips its other step and the next run goes on; the trained checkpoint's failure
    falls back to the random one, and the figures say so; any other failure stops the check."""
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    checkpoint = args.checkpoint
    for step in steps:
        if step.cell in failed:
            continue
        try:
            seconds[step.name] = run_step(step, env, layout.logs)
        except UserError as error:
            if step.cell not in (None, gpu_check.REFERENCE):
                failed[step.cell] = str(error)
                print(f"{step.cell} failed, the next run goes on: {error}", flush=True)
            elif step.name == "checkpoint" and args.checkpoint == "trained":
                print(f"training failed, the random checkpoint instead: {error}", flush=True)
                model_config = args.model_config or config["model"]["config"]
                weights = gpu_check.checkpoint_file(layout, "random")
                fallback = gpu_check.checkpoint_step("random", weights, model_config, config)
                seconds["checkpoint (random)"] = run_step(replace(fallback, name="checkpoint_random"), env, layout.logs)
                checkpoint = "random (training failed: logs/checkpoint.log)"
            else:
                raise
    return seconds, failed, checkpoint


def gpu_facts(device: str) -> tuple[str, str]:
    import torch

    versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    kind, index = parse_device(device, "--device")
    return (torch.cuda.get_device_name(index) if kind == "cuda" else "the CPU (no GPU: the steps' test)"), versions


def run(args: argparse.Namespace) -> int:
    runs = gpu_check.get_runs(args.runs)
    if args.checkpoint not in gpu_check.MADE_CHECKPOINTS and not Path(args.checkpoint).is_file():
        raise UserError(f"--checkpoint {args.checkpoint} is neither trained, random nor a checkpoint file")
    kind, _ = parse_device(args.device, "--device")
    work, out = args.work.resolve(), args.out.resolve()
    layout = gpu_check.Layout(work, out)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    steps = gpu_check.plan(
        layout, runs, config=config, images=args.images, shape=tuple(args.shape), device=args.device,
        checkpoint=args.checkpoint, warmup=args.warmup, model_config=args.model_config,
    )  # fmt: skip
    site, stand_ins = work / "site", work / "stand_ins"
    found = preflight(args, site, stand_ins)
    # (a dry run plans anywhere)
    problems = [] if args.dry_run else device_problems(args.device, key="--device", on_cpu=CPU_INSTEAD)
    if problems:
        raise UserError("; ".join(problems))
    print(f"machine: {found.describe()}")
    if args.dry_run:
        for step in steps:
            print(f"{step.name}: {shlex.join(step.command())}")
        return 0
    path = [str(stand_ins), str(site), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    sys.path[:0] = path[:2]  # (this process reads the figures with them too)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    try:
        seconds, failed, checkpoint = run_steps(steps, args, layout, config, env)
    finally:
        gpu_check.bundle(layout)  # the logs come back also when a step failed
    names = [gpu_check.REFERENCE, *(run.name for run in runs)]
    rows = [gpu_check.failed_row(name, failed[name]) if name in failed else gpu_check.cell_figures(name, layout)
            for name in names]  # fmt: skip
    gpu, versions = gpu_facts(args.device) if kind == "cuda" else ("the CPU (no GPU: the steps' test)", "-")
    facts = {
        "gpu": gpu, "versions": versions, "shape": args.shape, "images": args.images,
        "checkpoint": checkpoint, "preflight": found.describe(), "step_seconds": seconds,
    }  # fmt: skip
    write_json(out / "gpu_check.json", {**facts, "rows": rows})
    write_text(out / "benchmark.md", gpu_check.markdown(rows, facts))
    print(gpu_check.markdown(rows, facts))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return download(args) if args.command == "wheels" else run(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
