"""The backend registry: it loads without any runtime installed (the workflow imports it at parse time, on
any machine), finds backends by themselves, and gives each its options. What each backend plans in the
workflow, and the test-only backend run as a cell, are tests/workflow/test_backends.py."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

import pytest

from deeplabv3_pipeline import options
from deeplabv3_pipeline.backends import (
    PATH_VARIABLE,
    REGISTRY,
    add_backend_arguments,
    backend_flags,
    open_backend,
)
from deeplabv3_pipeline.errors import UserError

from ..conftest import REPO
from ..helpers import CONFIG, merged, with_plugins


def test_the_registry_loads_without_any_runtime():
    """Every runtime import blocked: the specs, precisions and model steps are still there, and the plan
    (frames, models, cells: what the workflow imports at parse time) loads too."""
    blocked = ["onnxruntime", "openvino", "torch", "tensorrt", "cuda", "mmseg", "mmengine", "nncf"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from deeplabv3_pipeline.backends import BACKENDS, PRECISIONS\n"
        "import deeplabv3_pipeline.planning.plan\n"
        "print(' '.join(BACKENDS), PRECISIONS['tensorrt'])\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert completed.stdout.split()[:5] == ["ascend", "onnxruntime", "openvino", "pytorch", "tensorrt"]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_backend_options_go_from_the_config_to_flags_and_back(name):
    """Each backend's options record, read from a config whose every option differs from its default,
    gives flags that a stage CLI parses back into the same record (config -> flag -> record written once)."""
    spec = REGISTRY[name]
    config = merged(
        CONFIG,
        {
            "model": {
                "config": "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024",
                "input_shape": [32, 48],
                **{"test_mode": "slide", "crop_size": [32, 32], "stride": [16, 24], "test_shape": [33, 49]},
            },
            "onnxruntime": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
            "pytorch": {"device": "cuda:1", "compile": True},
            "tensorrt": {"device": 3},
            "ascend": {"device": 2, "ais_bench": "python3.9 -m ais_bench --debug"},
        },
    )
    record = options.from_config(spec.options, config)
    for field in dataclasses.fields(record):
        assert getattr(record, field.name) != field.default, field.name
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    args = parser.parse_args(["--backend", name, *backend_flags(name, config)])
    assert options.from_namespace(spec.options, args) == record
    # no flags: the record's own defaults
    assert options.from_namespace(spec.options, parser.parse_args(["--backend", name])) == spec.options()


def test_a_flag_two_backends_share_is_declared_once():
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    flags = [flag for action in parser._actions for flag in action.option_strings]
    assert flags.count("--device") == 1 and "--ais-bench" in flags and "--providers" in flags
    assert parser.parse_args(["--backend", "onnxruntime", "--providers", "A", "B"]).providers == ["A", "B"]


def test_an_option_the_backend_lacks_is_refused_by_name(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    with pytest.raises(UserError, match="backend onnxruntime has no option device: it has providers"):
        open_backend("onnxruntime", model, device=1)


# ---------------------------------------------------------------- adding a backend: a test-only one


def test_a_backend_subpackage_registers_itself_everywhere():
    """tests/backends/constant, found through $DEEPLABV3_BACKEND_PATH: the registry, the variants, the CLI
    flags and the config check know it with nothing else changed."""
    code = (
        "import argparse\n"
        "from deeplabv3_pipeline.backends import BACKENDS, add_backend_arguments\n"
        "from deeplabv3_pipeline.planning.variants import VARIANTS, CPU_VARIANTS\n"
        "parser = argparse.ArgumentParser(); add_backend_arguments(parser)\n"
        "args = parser.parse_args(['--backend', 'constant', '--input-shape', '8', '16'])\n"
        "print(' '.join(BACKENDS)); print('constant-fp32' in VARIANTS, 'constant-fp32' in CPU_VARIANTS)\n"
        "print(args.backend, args.input_shape)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=with_plugins()
    )
    assert completed.stdout.splitlines() == [
        "ascend constant onnxruntime openvino pytorch tensorrt",
        "True True",
        "constant [8, 16]",
    ]
    assert "constant" not in REGISTRY  # without the variable: only the package's own


def test_a_backend_folder_named_like_another_is_refused(tmp_path):
    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text("def open_model(*args): ...\n")
    env = dict(os.environ, **{PATH_VARIABLE: str(tmp_path)})
    completed = subprocess.run(
        [sys.executable, "-c", "import deeplabv3_pipeline.backends"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert completed.returncode != 0
    assert (
        f"two backend folders are named onnxruntime, in {REPO / 'deeplabv3_pipeline' / 'backends'} and {tmp_path}"
        in (completed.stderr)
    )
