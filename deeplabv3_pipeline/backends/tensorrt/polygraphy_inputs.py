"""Polygraphy's data loader for the per-layer comparison's planned commands (``polygraphy run
--data-loader-script <this file>:load_data``): the preprocessed ``.bin`` images named in
``$DEEPLABV3_LAYER_INPUTS`` (``os.pathsep``-separated), float32 (1, 3, H, W) with H,W from
``$DEEPLABV3_INPUT_SHAPE``, fed to the model's input ``input``. Standalone: Polygraphy imports this
file by path, without the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

INPUTS = "DEEPLABV3_LAYER_INPUTS"
SHAPE = "DEEPLABV3_INPUT_SHAPE"


def load_data() -> Iterator[dict[str, np.ndarray]]:
    height, width = (int(side) for side in os.environ[SHAPE].split(","))
    for path in os.environ[INPUTS].split(os.pathsep):
        yield {"input": np.fromfile(path, dtype=np.float32).reshape(1, 3, height, width)}
