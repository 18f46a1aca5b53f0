import numpy as np
import pytest

from deeplabv3_pipeline.data.cityscapes import CLASS_NAMES, PALETTE, discover_frames, label_ids_to_train_ids, shard
from deeplabv3_pipeline.data.demo import demo_frames, make_demo_dataset
from deeplabv3_pipeline.errors import UserError


def test_nineteen_classes_in_train_id_order():
    assert len(CLASS_NAMES) == 19 and PALETTE.shape == (19, 3)
    assert CLASS_NAMES[0] == "road" and CLASS_NAMES[13] == "car" and CLASS_NAMES[18] == "bicycle"


def test_label_ids_to_train_ids_by_hand():
    # road 7->0, sidewalk 8->1, building 11->2, car 26->13, bicycle 33->18, unlabeled 0->255, guard rail 14->255
    label_ids = np.array([[7, 8, 11], [26, 33, 0], [14, 23, 24]], dtype=np.uint8)
    expected = np.array([[0, 1, 2], [13, 18, 255], [255, 10, 11]], dtype=np.uint8)
    np.testing.assert_array_equal(label_ids_to_train_ids(label_ids), expected)


def test_values_outside_cityscapes_ids_are_rejected():
    with pytest.raises(UserError, match=r"\[34, 200\].*labelIds"):
        label_ids_to_train_ids(np.array([[7, 34], [200, 0]], dtype=np.uint8), source="bad.png")


@pytest.mark.parametrize("count", [1, 3, 4])
@pytest.mark.parametrize("items", [0, 1, 7, 500])
def test_shards_are_balanced_contiguous_and_complete(items, count):
    data = list(range(items))
    parts = [shard(data, index, count) for index in range(count)]
    assert [item for part in parts for item in part] == data
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_discover_frames_on_demo_tree(tmp_path):
    frames = make_demo_dataset(tmp_path, "val", 3, (32, 64))
    assert discover_frames(tmp_path, "val") == frames == demo_frames(3)


def test_missing_root_and_split_name_the_path(tmp_path):
    with pytest.raises(UserError, match=f"dataset root {tmp_path / 'nope'} does not exist"):
        discover_frames(tmp_path / "nope", "val")
    make_demo_dataset(tmp_path, "val", 1, (32, 64))
    with pytest.raises(UserError, match=str(tmp_path / "leftImg8bit" / "test")):
        discover_frames(tmp_path, "test")


def test_image_without_label_and_label_without_image(tmp_path):
    frames = make_demo_dataset(tmp_path, "val", 2, (32, 64))
    label = frames[0].label_ids(tmp_path, "val")
    label.unlink()
    with pytest.raises(UserError, match=f"{frames[0].image(tmp_path, 'val')} has neither"):
        discover_frames(tmp_path, "val")
    label.write_bytes(b"")
    frames[1].image(tmp_path, "val").unlink()
    with pytest.raises(UserError, match=f"{frames[1].label_ids(tmp_path, 'val')} has no"):
        discover_frames(tmp_path, "val")
