"""Unit tests of the plan: frames, shards and paths from a config, without Snakemake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deeplabv3_pipeline.cityscapes import TRAIN_IDS_SUFFIX, dataset_id
from deeplabv3_pipeline.demo import demo_frames, make_demo_dataset
from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.plan import Plan

from .conftest import REPO
from .workflow import merged

DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


def plan(**changes: object) -> Plan:
    return Plan.from_config(merged(DEFAULTS, changes))


def test_the_demo_plan_names_every_per_frame_file_under_demo_val():
    demo = plan(demo={"images": 3}, shards=2)
    assert demo.demo and demo.data == "demo/val" and demo.frames == tuple(demo_frames(3))
    frame = demo.frames[0]
    assert demo.image(frame) == f"results/demo/cityscapes/leftImg8bit/val/{frame.city}/{frame.frame}_leftImg8bit.png"
    assert demo.prep_bin(frame) == f"results/prep_dataset/demo/val/{frame.stem}.bin"
    assert demo.prediction("openvino", frame) == f"results/infer/demo/val/openvino/{frame.stem}_0.bin"
    assert demo.prediction("{backend}", frame).startswith("results/infer/demo/val/{backend}/")  # a wildcard
    assert demo.summary("onnxruntime") == "results/infer/demo/val/onnxruntime/summary.json"
    assert demo.shard_summary("onnxruntime", 1) == "results/infer/demo/val/onnxruntime/shards/1.json"
    assert demo.result("pytorch") == "results/pytorch/result.json"
    assert demo.frames_without_train_ids == demo.frames  # the demo's labels are made by the labels rule
    assert demo.train_ids(frame) == demo.made_train_ids(frame)
    assert demo.made_train_ids(frame).startswith(f"results/labels/demo/val/{frame.city}/{frame.frame}")


@pytest.mark.parametrize(
    ("frames", "shards", "sizes"), [(3, 1, [3]), (3, 2, [2, 1]), (3, 4, [1, 1, 1]), (9, 4, [3, 2, 2, 2])]
)
def test_shards_are_balanced_contiguous_and_never_empty(frames, shards, sizes):
    planned = plan(demo={"images": frames}, shards=shards)
    parts = [planned.shard_frames(index) for index in planned.shards]
    assert [len(part) for part in parts] == sizes
    assert [frame for part in parts for frame in part] == list(planned.frames)


def test_a_real_root_gets_its_own_data_folder_and_its_own_train_ids_where_it_has_them(tmp_path):
    root = tmp_path / "cityscapes"
    make_demo_dataset(root, "val", 3, (64, 128), seed=0)
    first = demo_frames(3)[0]
    own = first.train_ids(root, "val")
    own.write_bytes(b"")  # the dataset ships this frame's trainIds: used as it is
    planned = plan(dataset={"root": str(root), "split": "val"})
    assert not planned.demo and planned.data == f"{dataset_id(root)}/val"
    assert planned.train_ids(first) == str(own) and own.name.endswith(TRAIN_IDS_SUFFIX)
    assert first not in planned.frames_without_train_ids and len(planned.frames_without_train_ids) == 2
    assert planned.prep_bin(first) == f"results/prep_dataset/{dataset_id(root)}/val/{first.stem}.bin"
    assert Path(planned.image(first)) == first.image(root, "val")


def test_a_missing_root_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match=f"dataset root {tmp_path / 'nowhere'} does not exist"):
        plan(dataset={"root": str(tmp_path / "nowhere")})
