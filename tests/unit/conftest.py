"""Fixtures of the unit tests that plant a fault: a model whose int8 error starts at one known layer
(the per-layer comparison must find it there, the mixed-precision search must keep it in float)."""

import numpy as np
import pytest
import torch

from ..conftest import made_once, run_script

PLANTED_SHAPE = (16, 32)  # the planted model's input


class Planted(torch.nn.Module):
    """Three 3x3 convolutions and a classifier, upsampled and argmaxed as the workflow's exports are. The
    second convolution's channel 0 is an outlier (a bias of 1000, the others' activations ~1): int8's
    per-tensor range of that activation then leaves the other channels a step or two of 8 bits. The third
    convolution does not read channel 0, so its output is made of the crushed channels only: the error
    starts at the third convolution, and nothing before it is past a threshold."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2, self.conv3 = (torch.nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8))
        self.classifier = torch.nn.Conv2d(8, 19, 1)
        with torch.no_grad():
            self.conv2.bias[0] = 1000.0
            self.conv3.weight[:, 0] = 0.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(image))
        features = torch.relu(self.conv2(features))
        features = torch.relu(self.conv3(features))
        logits = torch.nn.functional.interpolate(self.classifier(features), size=PLANTED_SHAPE, mode="bilinear")
        return logits.argmax(1, keepdim=True)


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """(fp32 ONNX, its int8 by quantize_onnx.py, preprocessed bins named as Cityscapes frames) of the
    planted model: calibration reads the first two bins, the third is the check frame."""

    def make(folder):
        bins = folder / "bins"
        torch.onnx.export(
            Planted().eval(), torch.zeros(1, 3, *PLANTED_SHAPE), str(folder / "planted.onnx"), input_names=["input"],
            output_names=["output"], opset_version=11, dynamo=False,
        )  # fmt: skip
        bins.mkdir()
        for index in range(3):
            image = np.random.default_rng(index).standard_normal((1, 3, *PLANTED_SHAPE), dtype=np.float32)
            image.tofile(bins / f"plantedburg_000000_{index:06d}_leftImg8bit.bin")
        run_script(
            "quantize_onnx.py", folder / "planted.onnx", folder / "planted_int8.onnx", "--calibration-data", bins,
            "--calibration-images", 2, "--check-images", 1,
        )  # fmt: skip

    folder = made_once(tmp_path_factory, "planted", make)
    return folder / "planted.onnx", folder / "planted_int8.onnx", sorted((folder / "bins").glob("*.bin"))


@pytest.fixture(scope="session")
def planted_openvino(planted, tmp_path_factory):
    """The planted model's int8 IR made by NNCF (quantize_onnx.py --quantizer openvino)."""
    fp32, _, bins = planted
    name = "planted_int8.xml"

    def make(folder):
        run_script(
            "quantize_onnx.py", fp32, folder / name, "--quantizer", "openvino", "--calibration-data", bins[0].parent,
            "--calibration-images", 2, "--check-images", 1,
        )  # fmt: skip

    return made_once(tmp_path_factory, "planted_openvino", make) / name


class PlantedFp16(torch.nn.Module):
    """A fault float16 makes at one known place: conv2 writes channel 1 as 1000 + a (its activation a ~ 1)
    and channel 2 as 1000, and conv3 reads only their difference, a. In float16, 1000's neighbours are 0.5
    apart: conv2's fp16 output keeps a to the nearest 0.5 and conv3's difference is mostly rounding. Kept
    fp32, conv2, its ReLU and conv3 keep a whole (the tensors between them stay fp32); no other node
    matters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1, self.conv2, self.conv3 = (torch.nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8))
        self.classifier = torch.nn.Conv2d(8, 19, 1)
        with torch.no_grad():
            self.conv2.bias[1] += 1000.0
            self.conv2.weight[2] = 0.0
            self.conv2.bias[2] = 1000.0
            self.conv3.weight.zero_()
            self.conv3.weight[:, 1, 1, 1] = torch.randn(8)  # conv3 reads (1000 + a) - 1000 at each pixel
            self.conv3.weight[:, 2, 1, 1] = -self.conv3.weight[:, 1, 1, 1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(image))
        features = torch.relu(self.conv2(features))
        features = self.conv3(features)
        logits = torch.nn.functional.interpolate(self.classifier(features), size=PLANTED_SHAPE, mode="bilinear")
        return logits.argmax(1, keepdim=True)


@pytest.fixture(scope="session")
def planted_fp16(planted, tmp_path_factory):
    """The fp16-planted model's fp32 ONNX (the planted model's bins are its check frames)."""

    def make(folder):
        torch.onnx.export(
            PlantedFp16().eval(), torch.zeros(1, 3, *PLANTED_SHAPE), str(folder / "planted_fp16.onnx"),
            input_names=["input"], output_names=["output"], opset_version=11, dynamo=False,
        )  # fmt: skip

    return made_once(tmp_path_factory, "planted_fp16", make) / "planted_fp16.onnx"
