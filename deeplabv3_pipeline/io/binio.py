"""Raw ``.bin`` tensors as the guide's tools write them: no header, C order, one array per file.

Every write goes to a temporary name in the same folder and is renamed when complete, so
a killed job or a full disk never leaves a truncated file under a finished file's name.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deeplabv3_pipeline.errors import UserError, recompute_hint


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for a writer (this process, or a tool such as torch.onnx.export)
    to fill; renamed to ``path`` when the block ends without error, removed otherwise. Every file this
    project writes goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.partial-*"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"no space left to write {path}: free space on {path.parent} "
                "or point results at a larger disk; finished files are kept"
            ) from error
        raise UserError(f"cannot write {path}: {error}") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: np.ndarray | bytes) -> None:
    """Write ``data`` (an array's raw bytes, or bytes such as an encoded JSON) to ``path`` atomically."""
    payload = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(payload)


def save_onnx(model: Any, path: Path) -> None:
    """``onnx.save`` of ``model`` to ``path``, atomically."""
    import onnx

    with atomic_path(path) as temporary:
        onnx.save(model, str(temporary))


def write_text(path: Path, text: str) -> None:
    """``write_atomic`` for text (UTF-8)."""
    write_atomic(path, text.encode())


def write_json(path: Path, data: object) -> None:
    """``write_atomic`` for JSON, indented, with a final newline."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_png(path: Path, image: np.ndarray) -> None:
    """``write_atomic`` for an image as PNG (8- or 16-bit, 1 or 3 channels, as cv2 writes them)."""
    import cv2  # here, not at the top: the JSON/bin writers must not need OpenCV

    encoded, buffer = cv2.imencode(".png", np.ascontiguousarray(image))
    if not encoded:
        raise UserError(f"cannot encode {path} as PNG (array {image.dtype} {image.shape})")
    write_atomic(path, buffer.tobytes())


def write_npy(path: Path, array: np.ndarray) -> None:
    """``write_atomic`` for an array in NumPy's .npy format."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())


def expand_inputs(sources: Sequence[Path], pattern: str, what: str, *, recursive: bool = False) -> list[Path]:
    """Each file given, and the files matching ``pattern`` in each folder given (below it, when
    ``recursive``), each folder's sorted; hidden files (a writer's partial ``.name.partial-*``) skipped.

    Folders are for people running a stage by hand; the workflow passes exact files.
    """
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            matches = source.rglob(pattern) if recursive else source.glob(pattern)
            in_folder = sorted(path for path in matches if not path.name.startswith("."))
            if not in_folder:
                raise UserError(f"no {pattern} files in {what} folder {source}")
            found += in_folder
        elif source.is_file():
            found.append(source)
        else:
            raise UserError(f"{what} {source} does not exist")
    return found


def list_bins(sources: Sequence[Path], what: str = "input") -> list[Path]:
    """``.bin`` files given, and every ``*.bin`` directly in each folder given (as ais_bench reads ``--input``)."""
    try:
        return expand_inputs(sources, "*.bin", what)
    except UserError as error:
        raise UserError(f"{error}: run preprocess first") from None


def read_bin(path: Path, dtype: np.dtype | type, shape: tuple[int, ...]) -> np.ndarray:
    """Read a raw tensor, checking that its size is exactly ``shape`` x ``dtype``."""
    path = Path(path)
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        size = path.stat().st_size
    except FileNotFoundError as error:
        raise UserError(f"{path} does not exist") from error
    if size != expected:
        raise UserError(
            f"{path} has {size:,} bytes, expected {expected:,} for {np.dtype(dtype).name} {shape}: "
            f"truncated, or made for another input_shape? {recompute_hint(path)}"
        )
    return np.fromfile(path, dtype=dtype).reshape(shape)


def read_onnx(path: Path, *, external_data: bool = True) -> Any:
    """The ONNX model at ``path`` (``onnx.ModelProto``); an unreadable file (truncated, another format) is
    a :class:`UserError` naming it and the command that remakes it. ``external_data=False`` reads the
    graph only."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=external_data)
    except Exception as error:  # protobuf's DecodeError and kin: any failure here is a bad file
        raise UserError(f"{path} is not a readable ONNX model ({error}): {recompute_hint(path)}") from error


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (models are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
