import cv2
import numpy as np
import pytest

from deeplabv3_pipeline.data.transform import MEAN, STD, normalize, preprocess_image, read_image
from deeplabv3_pipeline.errors import UserError


def test_normalize_matches_hand_computation():
    # One pixel, BGR (10, 20, 30): RGB is (30, 20, 10).
    bgr = np.array([[[10, 20, 30]]], dtype=np.uint8)
    out = normalize(bgr)
    expected = [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375]
    assert out.shape == (1, 3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-6)


def test_normalize_is_chw_and_keeps_layout():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    out = normalize(bgr)
    assert out.shape == (1, 3, 4, 6) and out.flags["C_CONTIGUOUS"]
    # channel 0 of the output is the image's R channel, i.e. BGR index 2
    np.testing.assert_allclose(out[0, 0], (bgr[..., 2] - MEAN[0]) / STD[0], rtol=1e-5)
    np.testing.assert_allclose(out[0, 2], (bgr[..., 0] - MEAN[2]) / STD[2], rtol=1e-5)


def test_wrong_size_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "x_000000_000000_leftImg8bit.png"
    cv2.imwrite(str(path), np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(UserError, match=r"x_000000_000000_leftImg8bit.png is 8x16.*input_shape is 16x32"):
        preprocess_image(path, (16, 32))
    assert preprocess_image(path, (8, 16)).shape == (1, 3, 8, 16)


def test_corrupt_and_truncated_images_are_errors(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((32, 32, 3), 7, np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    for path in (truncated, garbage):
        with pytest.raises(UserError, match=f"{path.name} is corrupt"):
            read_image(path)
