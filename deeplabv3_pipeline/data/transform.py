"""The guide's preprocessing (deeplabv3_torch_preprocess.py): BGR->RGB, mean/std, HWC->CHW, no resize."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deeplabv3_pipeline.errors import UserError

# mmseg's Cityscapes data_preprocessor, in RGB order.
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def read_image(path: Path) -> np.ndarray:
    """Read an image as cv2 does (BGR uint8, HxWx3); an unreadable or corrupt file is a UserError."""
    path = Path(path)
    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UserError(f"cannot read image {path}: {error}") from error
    image = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
    if image is None:
        raise UserError(f"image {path} is corrupt or not an image (cv2 cannot decode it): download it again")
    return image


def check_shape(image: np.ndarray, input_shape: tuple[int, int], path: Path) -> None:
    """The guide never resizes: an image of another size than the model input is an error."""
    if tuple(image.shape[:2]) != tuple(input_shape):
        height, width = image.shape[:2]
        raise UserError(
            f"image {path} is {height}x{width} (HxW) but model.input_shape is {input_shape[0]}x{input_shape[1]}: "
            "set model.input_shape to the images' size (Cityscapes: [1024, 2048]); images are never resized"
        )


def normalize(bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 -> RGB, (x - mean) * (1 / std), float32 1x3xHxW."""
    rgb = bgr[..., ::-1].astype(np.float32)
    normalized = (rgb - MEAN) * (np.float32(1.0) / STD)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[np.newaxis])


def preprocess_image(path: Path, input_shape: tuple[int, int]) -> np.ndarray:
    """Read, check and normalise one image: what goes into its ``.bin``."""
    image = read_image(path)
    check_shape(image, input_shape, path)
    return normalize(image)
