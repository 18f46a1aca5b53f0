"""Job sizes from a model's footprint (deeplabv3_pipeline/model/footprint.py), against what was measured."""

from __future__ import annotations

import pytest

from deeplabv3_pipeline.model.footprint import (
    SIZED_STAGES,
    Footprint,
    job_memory_mb,
    job_resources,
    job_runtime_min,
)

PROBE_PIXELS = 128 * 256

# Peak RSS (MB, /usr/bin/time) of export_onnx.py / verify_onnx.py / simplify_onnx.py, measured on 2 cores of
# an AMD EPYC (AVX2) on 2026-12-01 with random weights (docs/zoo-support.md, "Job sizes"): the model's
# weights and largest module output on the 128x256 probe (MB), the shape, then the three peaks.
MEASURED = [
    ("deeplabv3_r50-d8", 260.06, 4.0, (128, 256), 1972, 1403, 1590),
    ("deeplabv3_r50-d8", 260.06, 4.0, (512, 1024), 1982, 1467, 1590),
    ("deeplabv3_r50-d8", 260.06, 4.0, (1024, 2048), 2334, 2248, 1590),
    ("bisenetv2", 56.56, 2.0, (128, 256), 603, 559, 390),
    ("bisenetv2", 56.56, 2.0, (512, 1024), 662, 759, 390),
    ("fcn_hr18s", 15.09, 2.11, (128, 256), 536, 519, 405),
    ("fcn_hr18s", 15.09, 2.11, (512, 1024), 615, 710, 404),
    ("setr_vit-l", 1169.35, 2.02, (128, 256), 6494, 3928, 6257),
    ("setr_vit-l", 1169.35, 2.02, (512, 1024), 6488, 4454, 6294),
]


def footprint(weight_mb: float, activation_mb: float, seconds: float = 1.0) -> Footprint:
    return Footprint(weight_mb, activation_mb, PROBE_PIXELS, seconds)


@pytest.mark.parametrize(("model", "weights", "activation", "shape", "export", "verify", "simplify"), MEASURED)
def test_every_measured_job_fits_what_it_would_ask_for(model, weights, activation, shape, export, verify, simplify):
    """The sizes are upper envelopes of the measurements: lowering a coefficient below one breaks this."""
    for stage, peak in zip(SIZED_STAGES, (export, verify, simplify), strict=True):
        asked = job_memory_mb(footprint(weights, activation), stage, shape)
        assert peak <= asked, f"{model} {stage} at {shape}: measured {peak} MB, would ask {asked}"
        # and not wildly more: a cluster queues a job that asks too much for longer
        assert asked <= 2.5 * peak + 500, f"{model} {stage} at {shape}: asks {asked} MB for {peak}"


def test_memory_grows_with_the_weights_and_for_verify_with_the_image():
    small, large = footprint(10, 2), footprint(1000, 2)
    for stage in SIZED_STAGES:
        assert job_memory_mb(small, stage, (128, 256)) < job_memory_mb(large, stage, (128, 256))
    assert job_memory_mb(small, "verify_onnx", (128, 256)) < job_memory_mb(small, "verify_onnx", (1024, 2048))
    # onnxsim folds constants: the image does not matter
    assert job_memory_mb(small, "simplify_onnx", (128, 256)) == job_memory_mb(small, "simplify_onnx", (1024, 2048))
    assert job_memory_mb(small, "export_onnx", (128, 256)) % 100 == 0


def test_wall_time_grows_with_the_probes_forward_pass_and_the_pixels():
    quick, slow = footprint(10, 2, seconds=0.1), footprint(10, 2, seconds=2.0)
    assert job_runtime_min(quick, "export_onnx", (128, 256)) == 5  # the floor
    assert job_runtime_min(quick, "verify_onnx", (1024, 2048)) < job_runtime_min(slow, "verify_onnx", (1024, 2048))
    # 2 s at 128x256 is 128 s per pass at 1024x2048: 30 s + 4 passes, twice over, in minutes
    assert job_runtime_min(slow, "verify_onnx", (1024, 2048)) == 19


def test_a_number_in_the_config_wins_over_auto_per_key():
    model = footprint(260, 4)
    auto = job_resources(model, "export_onnx", (1024, 2048), {"mem_mb": "auto", "runtime": "auto"})
    assert auto == {
        "mem_mb": job_memory_mb(model, "export_onnx", (1024, 2048)),
        "runtime": job_runtime_min(model, "export_onnx", (1024, 2048)),
    }
    assert job_resources(model, "export_onnx", (1024, 2048), {"mem_mb": 5000, "runtime": "auto"}) == {
        **auto,
        "mem_mb": 5000,
    }


def test_a_footprint_survives_its_json_cache():
    model = footprint(260.06, 4.0, seconds=0.98)
    assert Footprint.from_json(model.to_json()) == model
    assert Footprint.from_json({**model.to_json(), "added_later": 1}) == model
    assert Footprint.from_json({"weight_mb": 260.0}) is None and Footprint.from_json([]) is None  # an older entry
