"""Every tensor the mmseg model computes in eager PyTorch, by the name the ONNX export gave it, for the
per-layer comparison (deeplabv3_pipeline/evaluation/layers.py): forward hooks on every module.

The export names each node after the scopes of the modules whose ``__call__`` made it
(``/backbone/layer1/layer1.0/conv1/Conv``): a module's scope is its caller's plus its unqualified name
(torch.onnx's ``_unqualified_variable_name``: ``layer1.0``, ``conv1``), a second call in one scope
getting ``_1`` (a block's ReLU used twice: ``relu``, ``relu_1``). The hooks rebuild those scopes, and a
module call's output is the tensor of the last node in its scope. A module that left no node (a
BatchNorm folded into the Conv before it) takes the tensor of the module whose output it read: the
folded Conv's tensor is the norm's output. Only tensors whose shape is the graph's are kept, so a
module that is not one node (a backbone returning a tuple) never stands for one.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from deeplabv3_pipeline.model.opcount import tensor_shapes

from .runner import PyTorchBackend


def unqualified_name(qualified: str) -> str:
    """torch.onnx's name of a module in its scope: from its last non-numeric atom (``layer1.0``)."""
    atoms = qualified.split(".")
    for index in range(len(atoms) - 1, -1, -1):
        if not atoms[index].isnumeric():
            return ".".join(atoms[index:])
    return qualified


def scope_tensors(graph) -> dict[str, str]:
    """Scope (``/backbone/layer1/layer1.0``) -> the output of the last node in it or under it, for every
    scope of the graph's node names."""
    last: dict[str, str] = {}
    for node in graph.node:
        if not node.output or not node.name.startswith("/"):
            continue
        parts = node.name.split("/")[1:-1]  # the node's own name is last
        for depth in range(1, len(parts) + 1):
            last["/" + "/".join(parts[:depth])] = node.output[0]
    return last


class PyTorchTensors:
    how = "eager PyTorch, forward hooks on every module, matched to the ONNX export's scopes"
    owned = False  # (an in-place module after it writes over it)
    streams = True

    def __init__(self, checkpoint: Path, precision: str, threads: int, options, graph_path: Path) -> None:
        import onnx

        from . import open_model

        # on the CPU: the comparison reads every module's output as it is made (on a GPU, a copy each)
        self.backend: PyTorchBackend = open_model(
            checkpoint, precision, threads, replace(options, torch_device="cpu", compile=False)
        )
        model = onnx.shape_inference.infer_shapes(onnx.load(str(graph_path)))
        self.input_name = model.graph.input[0].name
        self.scopes = scope_tensors(model.graph)
        # (an unknown dimension is 0 there: never an output's)
        self.shapes = {name: tuple(shape) for name, shape in tensor_shapes(model).items()}
        self.names = {module: unqualified_name(name) for name, module in self.backend.model.named_modules() if name}

    def dump(self, image: np.ndarray, sink: Callable[[str, np.ndarray], None]) -> None:
        """Each module call's output handed on when the call ends, named by :class:`CallNames`; nothing is
        kept. (The sink takes it at once: an in-place module after it, ReLU(inplace=True), changes it.)"""
        import torch

        names = CallNames(self.scopes)
        stack, seen = [""], Counter()

        def enter(module, inputs):
            scope = f"{stack[-1]}/{self.names[module]}"
            count = seen[scope]
            seen[scope] += 1
            stack.append(f"{scope}_{count}" if count else scope)

        def leave(module, inputs, output):
            scope = stack.pop()
            if not torch.is_tensor(output):
                return
            name = names.name(scope, next((item for item in inputs if torch.is_tensor(item)), None), output)
            if name is not None and self.shapes.get(name) == tuple(output.shape):
                sink(name, output.detach().float().numpy())

        handles = [module.register_forward_pre_hook(enter) for module in self.names]
        handles += [module.register_forward_hook(leave) for module in self.names]
        sink(self.input_name, image)
        try:
            autocast = self.backend.bf16_context() if self.backend.autocast else contextlib.nullcontext()
            with torch.inference_mode(), autocast:
                self.backend.model(torch.from_numpy(np.ascontiguousarray(image)))
        finally:
            for handle in handles:
                handle.remove()


class CallNames:
    """The ONNX tensor of each module call, in the order the calls end: a call whose scope has nodes is its
    last node's tensor; a call with none (a norm folded into the Conv before it) is the tensor of the call
    that made what it read, and its value, handed on later, replaces that call's."""

    def __init__(self, scopes: dict[str, str]) -> None:
        self.scopes = scopes
        self.of_tensor: dict[int, str] = {}  # id of a live output -> its ONNX tensor

    def name(self, scope: str, read, output) -> str | None:
        name = self.scopes.get(scope)
        if name is None and read is not None:
            name = self.of_tensor.get(id(read))
        if name is not None:
            key = id(output)
            self.of_tensor[key] = name
            # a dead tensor's id may be taken by a new one: forget it when the tensor goes
            weakref.finalize(output, self.of_tensor.pop, key, None)
        return name
