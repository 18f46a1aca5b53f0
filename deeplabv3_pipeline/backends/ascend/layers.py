"""The per-layer comparison of an ``.om`` with the fp32 ONNX model, planned as Ascend msit ``debug
compare`` commands (no CANN or NPU on the machines this workflow is tested on): msit dumps the ONNX
model in ONNX Runtime and the ``.om`` on the NPU for one input ``.bin``, writes one CSV row per operator
with the same metrics and thresholds as this workflow's comparison, and with ``--locat`` says where
the error starts.
"""

from __future__ import annotations

from pathlib import Path

# msit's default CANN location (its -c/--cann-path)
CANN_PATH = "/usr/local/Ascend/ascend-toolkit/latest"


def msit_commands(
    reference: Path,
    source: Path,
    model: Path,
    inputs: list[Path],
    folder: Path,
    input_shape: tuple[int, int],
    precision: str,
    options,
) -> list[list[str]]:
    """One ``msit debug compare`` per input image (msit takes one input per model input), each into its
    own folder under ``folder`` (msit wants it to exist)."""
    commands = []
    for image in inputs:
        output = folder / image.stem
        commands.append(["mkdir", "-p", str(output)])
        commands.append([
            "msit", "debug", "compare", "-gm", str(reference), "-om", str(model), "-i", str(image),
            "-c", CANN_PATH, "-o", str(output), "-is", f"input:1,3,{input_shape[0]},{input_shape[1]}",
            "--device", str(options.device), "--locat", "True",
        ])  # fmt: skip
    return commands
