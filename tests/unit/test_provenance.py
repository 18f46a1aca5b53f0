"""Unit tests: what a result was computed from (fingerprints, recorded sizes, the kept-result check, the
code version), the advice an error gives, and the reason a file is not a checkpoint."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from deeplabv3_pipeline.errors import UserError, check_no_wildcard_braces, recompute_hint
from deeplabv3_pipeline.evaluation.provenance import (
    code_version,
    file_sizes,
    fingerprint,
    kept_result_problem,
    stale_files,
)
from deeplabv3_pipeline.model.mmseg_model import load_state_dict_file

from ..conftest import REPO


def test_fingerprint_changes_with_a_replaced_file_whatever_its_mtime(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"first")
    before = fingerprint([image])
    assert fingerprint([image]) == before  # stable: a rule's param must not change by itself
    status = image.stat()
    image.write_bytes(b"other")  # same size, another file...
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns - 10**12))  # ...with an older mtime
    assert fingerprint([image]) != before
    image.unlink()
    assert fingerprint([image]) != before  # missing is a state of its own


def test_stale_files_names_missing_and_resized_files_but_allows_deleted_temporaries(tmp_path):
    kept, resized, temporary = (tmp_path / name for name in ("kept.bin", "resized.bin", "temp.bin"))
    for path in (kept, resized, temporary):
        path.write_bytes(b"12345678")
    recorded = file_sizes([kept, resized, temporary, None])
    assert recorded == {str(kept): 8, str(resized): 8, str(temporary): 8}
    resized.write_bytes(b"1234")
    temporary.unlink()
    assert stale_files(recorded, may_be_missing=[str(temporary)]) == [
        (str(resized), "has 4 bytes, but 8 when the result was computed")
    ]
    assert stale_files(recorded) == [
        (str(resized), "has 4 bytes, but 8 when the result was computed"),
        (str(temporary), "is missing"),
    ]


@pytest.fixture
def kept_result(tmp_path, monkeypatch):
    """A workflow folder with results/x/result.json recording two predictions and one label."""
    monkeypatch.chdir(tmp_path)
    predictions = [f"results/infer/p{index}_0.bin" for index in range(2)]
    label = "labels/l.png"  # a dataset's own file: not under results/
    for path in [*predictions, label]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"\0" * 16)
    result = {
        "predictions": {"p0": predictions[0], "p1": predictions[1]},
        "labels": {"p0": label, "p1": label},
        "files": file_sizes([*predictions, label]),
        "config": {"k": 1},
    }
    Path("results/x").mkdir(parents=True)
    Path("results/x/result.json").write_text(json.dumps(result))
    return predictions, label


def test_kept_result_problem_names_a_missing_prediction_and_the_command(kept_result):
    predictions, label = kept_result
    inputs = [*predictions, label]
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}) is None
    Path(predictions[1]).unlink()
    problem = kept_result_problem("results/x/result.json", inputs, {"k": 1})
    assert problem.startswith(f"results/x/result.json was computed from {predictions[1]}, which is missing: ")
    command = problem.split("`")[1]
    assert shlex.split(command) == [
        "snakemake",
        "--cores",
        "all",
        "--forcerun",
        predictions[1],
        "--",
        "results/x/result.json",
    ]
    # Left to Snakemake: deleted temporaries, another set of inputs, another config (each reruns evaluate)
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}, may_be_missing=[predictions[1]]) is None
    assert kept_result_problem("results/x/result.json", [*inputs[:1], label], {"k": 1}) is None
    assert kept_result_problem("results/x/result.json", inputs, {"k": 2}) is None


def test_kept_result_problem_names_a_replaced_file_with_an_older_mtime_only(kept_result):
    predictions, label = kept_result
    inputs = [*predictions, label]
    result_mtime = Path("results/x/result.json").stat().st_mtime_ns
    Path(predictions[0]).write_bytes(b"\0" * 8)
    os.utime(predictions[0], ns=(result_mtime + 10**9, result_mtime + 10**9))  # newer: Snakemake reruns by itself
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}) is None
    os.utime(predictions[0], ns=(result_mtime - 10**9, result_mtime - 10**9))  # older: it would not
    problem = kept_result_problem("results/x/result.json", inputs, {"k": 1})
    assert f"{predictions[0]}, which has 8 bytes, but 16 when the result was computed" in problem
    Path(label).unlink()  # a source file outside results/: discovering the frames reports that
    assert "labels/l.png" not in kept_result_problem("results/x/result.json", inputs, {"k": 1})


def test_kept_result_problem_leaves_what_snakemake_reruns_by_itself(kept_result):
    """A recorded file newer than the result (an upstream change: Snakemake reruns the evaluation and
    remakes what is missing), every prediction gone (storage.keep_predictions: false earlier, or a
    clean-up), and the user's own files (their fingerprints cover them): no error."""
    predictions, label = kept_result
    inputs = [*predictions, label]
    Path(predictions[1]).unlink()
    result_mtime = Path("results/x/result.json").stat().st_mtime_ns
    os.utime(predictions[0], ns=(result_mtime + 10**9, result_mtime + 10**9))
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}) is None
    os.utime(predictions[0], ns=(result_mtime - 10**9, result_mtime - 10**9))
    assert "is missing" in kept_result_problem("results/x/result.json", inputs, {"k": 1})  # one of two: damage
    Path(predictions[0]).unlink()
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}) is None  # all gone
    Path("results/own.pth").write_bytes(b"x")
    result = json.loads(Path("results/x/result.json").read_text())
    result["files"]["results/own.pth"] = 5  # a checkpoint of the user's kept under results/, replaced
    Path("results/x/result.json").write_text(json.dumps(result))
    assert "results/own.pth" in kept_result_problem("results/x/result.json", inputs, {"k": 1})
    assert kept_result_problem("results/x/result.json", inputs, {"k": 1}, sources=["results/own.pth"]) is None


def test_kept_result_problem_names_a_damaged_result(kept_result):
    predictions, label = kept_result
    Path("results/x/result.json").write_text("{not json")
    problem = kept_result_problem("results/x/result.json", [*predictions, label], {})
    assert "results/x/result.json is damaged (not JSON)" in problem and "--forcerun results/x/result.json" in problem
    result_mtime = Path("results/x/result.json").stat().st_mtime_ns
    os.utime(predictions[0], ns=(result_mtime + 10**9, result_mtime + 10**9))  # evaluate reruns anyway
    assert kept_result_problem("results/x/result.json", [*predictions, label], {}) is None


def test_recompute_hint_quotes_every_path():
    hint = recompute_hint("results/a b/$(touch x)'q.bin")
    command = hint.split("`")[1]
    assert shlex.split(command)[-1] == "results/a b/$(touch x)'q.bin"


def test_paths_with_braces_are_refused_naming_them():
    check_no_wildcard_braces("data/a b/$(x)'ü", "dataset.root")  # every other character is data
    with pytest.raises(UserError, match=r"dataset.root data/\{x\} holds"):
        check_no_wildcard_braces("data/{x}", "dataset.root")


def test_code_version_hashes_the_code_and_changes_with_it(tmp_path):
    here = code_version()
    assert len(here["files_sha256"]) == 64 and here["files"] > 20
    assert here["package_version"] == "0.1.0"
    if (REPO / ".git").exists():
        assert len(here["git_commit"]) == 40 and isinstance(here["git_dirty"], bool)
    copy = tmp_path / "copy"
    for folder in ("deeplabv3_pipeline", "scripts", "rules", "schemas"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "Snakefile", copy / "Snakefile")
    first = code_version(copy)
    assert first["git_commit"] is None and first["files_sha256"] == here["files_sha256"]
    script = copy / "scripts" / "infer.py"
    script.write_text(script.read_text() + "\n# edited\n")
    assert code_version(copy)["files_sha256"] != first["files_sha256"]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty (0 bytes)"),
        (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "is an HTML page, not a checkpoint"),
        (b"  <html><head><title>Sign in</title>", "is an HTML page, not a checkpoint"),
        ("version https://git-lfs.github.com/spec/v1\nüoid sha256:abc\n".encode(), "is a text file ('version https"),
        (bytes(range(7, 200)) * 30, "is not a PyTorch checkpoint: it is neither a zip archive"),
        (b"\x80\x02" + bytes(range(200, 256)) * 10, "is a damaged pickle"),
    ],
)
def test_a_file_that_is_no_checkpoint_gets_its_own_reason(tmp_path, content, reason):
    path = write_bytes(tmp_path / "model.pth", content)
    with pytest.raises(UserError) as raised:
        load_state_dict_file(path)
    assert str(raised.value).startswith(f"checkpoint {path} {reason}")


def test_a_truncated_and_an_unsafe_checkpoint_are_told_apart(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good)
    truncated = write_bytes(tmp_path / "truncated.pth", good.read_bytes()[:2000])
    with pytest.raises(UserError, match=r"cannot be read .*is it truncated"):
        load_state_dict_file(truncated)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + shlex.quote(str(tmp_path / "PWNED")),))

    unsafe = tmp_path / "unsafe.pth"
    with open(unsafe, "wb") as handle:
        pickle.dump({"state_dict": Payload()}, handle, protocol=2)
    with pytest.raises(UserError, match="only unsafe unpickling can load; refusing"):
        load_state_dict_file(unsafe)
    assert not (tmp_path / "PWNED").exists()
