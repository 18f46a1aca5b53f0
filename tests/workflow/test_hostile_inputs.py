"""Hostile and damaged inputs, end to end: names are data, never commands; every error's advice works
when followed literally; a replaced or missing file is noticed. Each case starts from a complete run
and checks the figures after the recovery."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from deeplabv3_pipeline.data.demo import demo_frames, make_demo_dataset

from ..helpers import (
    DEMO_CHECKPOINT_PATH,
    DEMO_DATA,
    SHAPE,
    SIM_MODEL_PATH,
    TAG,
    TINY,
    TINY_KEY,
    cell_result,
    copy_run,
    figures,
    infer_dir,
    merged,
    planned_rules,
    read_result,
    replace_file,
    rules_in,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow

# Every character a shell would act on, and some it would split on, in one name (no "_": Cityscapes'
# separator, no braces: Snakemake's wildcards, refused with their own error).
HOSTILE = "x $(touch PWNED) `touch PWNED2` 'q\" ü;&|"


def advised_command(output: str) -> list[str]:
    """The Snakemake arguments of the command an `error:` line advises (between backticks)."""
    line = next(line for line in output.splitlines() if "error:" in line and "`snakemake " in line)
    words = shlex.split(re.search(r"`(snakemake [^`]*)`", line).group(1))
    assert words[:3] == ["snakemake", "--cores", "all"], words
    return words[3:]


def hostile_copy(source_root: Path, root: Path) -> dict[str, str]:
    """The dataset at ``source_root`` under ``root``, each city folder and frame renamed to hold HOSTILE
    characters; returns {hostile frame id: original frame id}."""
    renamed = {}
    for path in sorted(source_root.rglob("*.png")):
        relative = path.relative_to(source_root)
        top, split, city = relative.parts[:3]
        new_city = f"{city}{HOSTILE}"
        new_name = path.name.replace(city, new_city, 1)
        destination = root / top / split / new_city / new_name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        renamed["_".join(new_name.split("_")[:3])] = "_".join(path.name.split("_")[:3])
    return renamed


def test_hostile_names_are_data_and_replaced_sources_are_noticed(tiny_run, tmp_path):
    """A dataset root, its city folders and frames, and a checkpoint path holding spaces, quotes, non-ASCII,
    `$(...)`, backticks and ; & |: the run works, nothing is executed, the figures are the plain run's.
    Then an image and a label replaced with older mtimes are computed again."""
    folder = tmp_path / f"data {HOSTILE}"
    renamed = hostile_copy(tiny_run / "results" / "demo" / f"cityscapes{TAG}", folder / f"city {HOSTILE}")
    checkpoint = folder / f"ckpt {HOSTILE}" / "random.pth"
    checkpoint.parent.mkdir(parents=True)
    shutil.copy(tiny_run / DEMO_CHECKPOINT_PATH, checkpoint)
    workdir = copy_run(tiny_run, tmp_path / "copy")
    config = {"dataset": {"root": str(folder / f"city {HOSTILE}")}, "model": {"checkpoint": str(checkpoint)}}
    write_config(workdir, merged(TINY, config))
    snakemake(workdir, "results/result.json")
    for place in (workdir, tmp_path, folder, Path.cwd()):
        assert not list(place.rglob("PWNED*")), f"a name was run as a command in {place}"
    result, plain = read_result(workdir), read_result(tiny_run)
    assert set(result["per_image"]) == set(renamed)
    assert {renamed[key]: value for key, value in result["per_image"].items()} == plain["per_image"]
    for key in ("aAcc", "mIoU", "mAcc", "per_class", "confusion_matrix", "num_images"):
        assert result[key] == plain[key], key
    assert result["checkpoint"] == str(checkpoint) and result["checkpoint_sha256"] == plain["checkpoint_sha256"]

    # unzip and rsync keep a file's own mtime: frame 0's image and label become frame 2's, each with an
    # mtime long before the run; they are computed again, and nothing else is.
    root = folder / f"city {HOSTILE}"
    frames = sorted(renamed)
    first, last = (next(root.rglob(f"{frame}_leftImg8bit.png")) for frame in (frames[0], frames[2]))
    for suffix in ("_leftImg8bit.png", "_gtFine_labelIds.png"):
        source, target = (next(root.rglob(f"{frame}{suffix}")) for frame in (frames[2], frames[0]))
        shutil.copyfile(source, target)
        os.utime(target, (946684800, 946684800))  # 2000-01-01
    assert first.read_bytes() == last.read_bytes()
    ran = rules_in(snakemake(workdir, "results/result.json").stdout)
    assert {"preprocess", "labels", "infer", "evaluate"} <= ran and "export_onnx" not in ran
    replaced = read_result(workdir)
    predictions = {key: np.fromfile(workdir / path, np.int64) for key, path in replaced["predictions"].items()}
    assert np.array_equal(predictions[frames[0]], predictions[frames[2]])  # the same image now
    assert replaced["per_image"][frames[0]] == replaced["per_image"][frames[2]]
    assert replaced["per_image"][frames[0]] != result["per_image"][frames[0]]
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/result.json").stdout


def test_braces_in_a_frame_name_or_the_model_config_are_refused_at_start_naming_them(tmp_path):
    root = tmp_path / "cityscapes"
    make_demo_dataset(root, "val", 1, tuple(SHAPE), seed=0)
    image = next(root.rglob("*_leftImg8bit.png"))
    braced = image.with_name("{x}" + image.name)
    image.rename(braced)
    label = next(root.rglob("*_gtFine_labelIds.png"))
    label.rename(label.with_name("{x}" + label.name))
    write_config(tmp_path, merged(TINY, {"dataset": {"root": str(root)}}))
    run = snakemake(tmp_path, "-n", check=False)
    assert run.returncode != 0 and f"error: image {braced} holds '{{' or '}}'" in run.stdout
    assert not (tmp_path / "results").exists()
    write_config(tmp_path, merged(TINY, {"model": {"config": "configs/{name}.py"}}))
    run = snakemake(tmp_path, "-n", check=False)
    assert run.returncode != 0 and "error: model.config configs/{name}.py holds '{' or '}'" in run.stdout


def test_a_deleted_prediction_is_noticed_and_recomputed_by_the_advised_command(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    deleted = workdir / infer_dir() / f"{demo_frames(3)[1].stem}_0.bin"
    deleted.unlink()
    planned = snakemake(workdir, "-n", "results/result.json", check=False)
    assert planned.returncode != 0 and "Nothing to be done" not in planned.stdout
    relative = str(deleted.relative_to(workdir))
    assert f"error: {cell_result()} was computed from {relative}, which is missing" in planned.stdout
    recomputed = snakemake(workdir, *advised_command(planned.stdout))
    assert "rule preprocess" not in recomputed.stdout and "rule export_onnx" not in recomputed.stdout
    snakemake(workdir, "results/result.json")
    assert figures(read_result(workdir)) == figures(read_result(tiny_run)) and deleted.is_file()


def test_a_damaged_model_and_a_truncated_prep_bin_are_recomputed_by_the_advised_commands(tiny_run, tmp_path):
    """Each damaged file stops the job that reads it with the command that remakes it; following the two
    commands, one after the other, gives the clean figures back."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    model = workdir / SIM_MODEL_PATH
    replace_file(model, model.read_bytes()[:5000])
    damaged = workdir / "results" / "prep_dataset" / DEMO_DATA / f"{demo_frames(3)[0].stem}.bin"
    replace_file(damaged, damaged.read_bytes()[:1000])
    failed = snakemake(workdir, "results/result.json", check=False)
    assert failed.returncode != 0 and f"error: {SIM_MODEL_PATH} is not a readable ONNX model" in failed.stdout
    failed = snakemake(workdir, *advised_command(failed.stdout), check=False)  # the model is remade...
    assert failed.returncode != 0 and f"error: {damaged.relative_to(workdir)} has 1,000 bytes" in failed.stdout
    snakemake(workdir, *advised_command(failed.stdout))  # ...then the bin
    assert figures(read_result(workdir)) == figures(read_result(tiny_run))
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/result.json").stdout


def test_more_shards_than_frames_plans_one_shard_per_frame(tiny_run, tmp_path):
    workdir = copy_run(tiny_run, tmp_path / "copy")
    write_config(workdir, merged(TINY, {"shards": 4}))
    planned = snakemake(workdir, "-n", "results/result.json")
    assert "note: shards: 4 but only 3 frames: running 3 shards" in planned.stdout
    assert "infer_deeplabv3_onnxruntime_fp32_shard2" in planned.stdout and "_shard3" not in planned.stdout


def test_model_verify_is_its_own_step(tiny_run, tmp_path):
    """Turning the check of the export off or on re-exports nothing and reruns no inference or evaluation."""
    workdir = copy_run(tiny_run, tmp_path / "copy")
    report = json.loads((workdir / "results" / "models" / TINY_KEY / f"{TINY_KEY}_verify.json").read_text())
    assert report["differing_pixels"] <= report["tolerance"]
    result = read_result(workdir)
    assert len(result["code"]["files_sha256"]) == 64 and result["files"][SIM_MODEL_PATH] > 0
    for verify in (False, True):
        write_config(workdir, merged(TINY, {"model": {"verify": verify}}))
        assert planned_rules(workdir) == {"result"}, verify
        snakemake(workdir, "results/result.json")
