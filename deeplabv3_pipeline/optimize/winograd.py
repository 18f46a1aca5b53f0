"""Winograd rewrite of an ONNX model's 3x3 convolutions, dilated ones included.

A 3x3 convolution does 9 multiply-adds per output and input channel. Winograd's minimal
filtering algorithm F(m x m, 3 x 3) computes an m x m block of outputs from an (m+2) x (m+2)
block of inputs with (m+2)^2 products instead of 9 m^2: 16 instead of 36 for m = 2, 36 instead
of 144 for m = 4. The products become (m+2)^2 independent matrix multiplications, one per
position of the transformed block:

    M[i, j] = V[i, j] @ U[i, j]      V: (tiles, C) transformed inputs, U: (C, K) transformed weights

and the input and output transforms are additions and multiplications by small constants.
Fast CPU libraries use this for 3x3 convolutions (NNPACK, oneDNN on AVX-512, ncnn); ONNX Runtime
and OpenVINO on AVX2 do not, so this module writes it into the graph itself with plain ONNX
operators (Transpose, Pad, Reshape, Slice, Add/Sub/Mul, MatMul, Concat) that every runtime runs.
The transforms work channels-last, so every slice copies runs of at least d*C values.

Dilation d: the m outputs of a 1-D tile are d apart and read inputs d apart, so rows are grouped
in blocks of m*d (tiles at offsets 0..d-1 of each block) and everything else is the undilated
algorithm. The map is padded up to whole blocks, which costs ``padded_work`` extra (1.27x for
d=36 on a 128x256 map with m=4, 1.0 when m*d divides the size); a convolution whose saving the
padding would eat stays direct (``MAX_MULTIPLY_RATIO``).

The result equals the direct convolution up to float rounding (relative error ~1e-6 for m = 2,
~1e-5 for m = 4 in float32); where a class decision is a near-tie the ArgMax can flip, which the
callers measure as pixel agreement against the direct model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.io.binio import read_onnx, save_onnx


@dataclass(frozen=True)
class Algorithm:
    """Winograd F(m, 3): m outputs of a 1-D tile from m + 2 inputs (Lavin & Gray 2016).

    Y = A^T [(G g) * (B^T d)], applied along rows and then columns in 2-D.
    """

    outputs: int
    input_transform: np.ndarray  # B^T, (m + 2, m + 2)
    weight_transform: np.ndarray  # G, (m + 2, 3)
    output_transform: np.ndarray  # A^T, (m, m + 2)

    @property
    def taps(self) -> int:
        return self.outputs + 2


LOG = logging.getLogger(__name__)

ALGORITHMS = {
    2: Algorithm(
        outputs=2,
        input_transform=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
        weight_transform=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
        output_transform=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
    ),
    4: Algorithm(
        outputs=4,
        input_transform=np.array(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            dtype=np.float64,
        ),
        weight_transform=np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ]
        ),
        output_transform=np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64
        ),
    ),
}


def transform_weights(weight: np.ndarray, algorithm: Algorithm) -> np.ndarray:
    """(K, C, 3, 3) kernel -> (taps, taps, K, C) Winograd-domain weights U = G g G^T, float32."""
    g = algorithm.weight_transform
    return np.einsum("ai,kcij,bj->abkc", g, weight.astype(np.float64), g).astype(np.float32)


def tile_blocks(size: int, dilation: int, outputs: int) -> int:
    """Blocks of ``outputs * dilation`` outputs that cover ``size`` outputs along one axis."""
    return math.ceil(size / (outputs * dilation))


def padded_work(height: int, width: int, dilation: int, outputs: int) -> float:
    """Area the tiles cover over the feature map's area: the work padding adds."""
    block = outputs * dilation
    rows, cols = tile_blocks(height, dilation, outputs), tile_blocks(width, dilation, outputs)
    return rows * block * cols * block / (height * width)


# Rewrite a convolution only when it saves at least a quarter of the multiplications: the
# transforms cost memory traffic, and a large dilation on a small feature map pads the tiles
# out to many times the map (d=36 on 8x16 with tile 4: 18x the area).
MAX_MULTIPLY_RATIO = 0.75


def multiply_ratio(height: int, width: int, dilation: int, outputs: int) -> float:
    """Multiplications of the Winograd form over those of the direct 3x3 convolution."""
    taps = outputs + 2
    return taps * taps / (9 * outputs * outputs) * padded_work(height, width, dilation, outputs)


@dataclass(frozen=True, eq=False)
class ConvSite:
    """A Conv node that this rewrite can replace, with what it needs to know about it."""

    node: onnx.NodeProto
    channels_in: int
    channels_out: int
    height: int
    width: int
    dilation: int


def site_ratio(site: ConvSite, outputs: int) -> float:
    """``multiply_ratio`` of one convolution."""
    return multiply_ratio(site.height, site.width, site.dilation, outputs)


def eligible(attributes: dict, weight: np.ndarray, input_shape: list[int] | None) -> bool:
    """A plain 3x3 'same' convolution of one image: stride 1, one group, padding = dilation."""
    dilations = list(attributes.get("dilations", [1, 1]))
    return (
        weight.ndim == 4
        and tuple(weight.shape[2:]) == (3, 3)
        and attributes.get("group", 1) == 1
        and list(attributes.get("strides", [1, 1])) == [1, 1]
        and dilations[0] == dilations[1]
        and list(attributes.get("pads", [0, 0, 0, 0])) == [dilations[0]] * 4
        and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        and input_shape is not None
        and len(input_shape) == 4
        and input_shape[0] == 1
        and all(isinstance(size, int) and size > 0 for size in input_shape)
    )


def find_sites(model: onnx.ModelProto, min_channels: int) -> list[ConvSite]:
    """Conv nodes to rewrite: eligible 3x3 convolutions with at least ``min_channels`` inputs.

    Narrow convolutions stay direct: their Winograd matrix products are too thin to run fast.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        value.name: [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]
        for value in list(inferred.graph.value_info) + list(inferred.graph.input)
    }
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    sites = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in initializers:
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        weight = numpy_helper.to_array(initializers[node.input[1]])
        input_shape = shapes.get(node.input[0])
        if not eligible(attributes, weight, input_shape) or weight.shape[1] < min_channels:
            continue
        sites.append(
            ConvSite(
                node=node,
                channels_in=int(weight.shape[1]),
                channels_out=int(weight.shape[0]),
                height=int(input_shape[2]),
                width=int(input_shape[3]),
                dilation=int(attributes.get("dilations", [1, 1])[0]),
            )
        )
    return sites


class GraphWriter:
    """Appends nodes and constant initializers under one name prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}/{hint}_{self.count}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attributes) -> str:
        output = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def reshape(self, tensor: str, shape: list[int]) -> str:
        return self.op("Reshape", [tensor, self.constant("shape", np.array(shape, dtype=np.int64))], "reshape")

    def slice(self, tensor: str, starts: list[int], ends: list[int], axes: list[int]) -> str:
        constants = [
            self.constant(hint, np.array(values, dtype=np.int64))
            for hint, values in (("starts", starts), ("ends", ends), ("axes", axes))
        ]
        return self.op("Slice", [tensor, *constants], "slice")

    def combine(self, coefficients: np.ndarray, tensors: list[str]) -> str:
        """sum(c * t): Add/Sub for c = +-1, a Mul by a constant otherwise; zero terms skipped."""
        terms = [(float(c), t) for c, t in zip(coefficients, tensors, strict=True) if c != 0]
        terms.sort(key=lambda term: term[0] < 0)  # start from a positive term: no negation needed
        if terms[0][0] < 0:
            raise ValueError("a Winograd transform row with no positive term")
        total = self.scaled(*terms[0])
        for coefficient, tensor in terms[1:]:
            operand = self.scaled(abs(coefficient), tensor)
            total = self.op("Add" if coefficient > 0 else "Sub", [total, operand], "add" if coefficient > 0 else "sub")
        return total

    def scaled(self, coefficient: float, tensor: str) -> str:
        if coefficient == 1:
            return tensor
        return self.op("Mul", [tensor, self.constant("scale", np.array(coefficient, dtype=np.float32))], "mul")


def taps(writer: GraphWriter, tensor: str, blocks: int, axis: int, algorithm: Algorithm) -> list[str]:
    """The inputs of every 1-D tile along ``axis``, viewed as [blocks + 1, m, ...]: input i of the
    tile in block b is element (b + i // m, i % m)."""
    m = algorithm.outputs
    return [
        writer.slice(tensor, [tap // m, tap % m], [blocks + tap // m, tap % m + 1], [axis, axis + 1])
        for tap in range(algorithm.taps)
    ]


def rewrite_conv(
    site: ConvSite,
    weight: np.ndarray,
    bias: np.ndarray | None,
    algorithm: Algorithm,
    writer: GraphWriter,
    hwc_input: str,
) -> None:
    """Append nodes computing ``site``'s output with Winograd F(m x m, 3 x 3) to ``writer``.

    Works channels-last (``hwc_input``: the Conv's input as [1, H, W, C]) so that every slice
    copies runs of at least d*C contiguous values; the output gets the Conv's name, in NCHW.
    """
    m, d, channels, kernels = algorithm.outputs, site.dilation, site.channels_in, site.channels_out
    rows, cols = tile_blocks(site.height, d, m), tile_blocks(site.width, d, m)
    padded_h, padded_w = m * d * (rows + 1), m * d * (cols + 1)
    pads = [0, d, d, 0, 0, padded_h - d - site.height, padded_w - d - site.width, 0]
    padded = writer.op("Pad", [hwc_input, writer.constant("pads", np.array(pads, dtype=np.int64))], "pad")

    # Input transform B^T d B, rows first: [rows+1, m, d*W'*C] -> taps x [rows, 1, d*W'*C] ...
    by_rows = writer.reshape(padded, [rows + 1, m, d * padded_w * channels])
    row_taps = taps(writer, by_rows, rows, 0, algorithm)
    tiles = rows * d * cols * d
    weights = transform_weights(weight, algorithm)
    products: list[list[str]] = []
    for i, row in enumerate(algorithm.input_transform):
        row_term = writer.combine(row, row_taps)
        # ... then columns: [rows*d, cols+1, m, d*C] -> taps x [rows*d, cols, 1, d*C] = [tiles, C] each.
        col_taps = taps(writer, writer.reshape(row_term, [rows * d, cols + 1, m, d * channels]), cols, 1, algorithm)
        products.append([])
        for j, col in enumerate(algorithm.input_transform):
            term = writer.reshape(writer.combine(col, col_taps), [tiles, channels])
            # One of the taps^2 matrix products: (tiles, C) @ (C, K).
            transposed = np.ascontiguousarray(weights[i, j].T)
            products[i].append(writer.op("MatMul", [term, writer.constant("weights", transposed)], "matmul"))

    # Output transform A^T M A, rows (i) then columns (j); each result is [tiles, K].
    blocks = []
    for row in algorithm.output_transform:  # output s of each tile's column of outputs
        row_sum = [writer.combine(row, [products[i][j] for i in range(algorithm.taps)]) for j in range(algorithm.taps)]
        outputs = [
            writer.reshape(writer.combine(col, row_sum), [rows, 1, d, cols, 1, d * kernels])
            for col in algorithm.output_transform
        ]
        blocks.append(writer.op("Concat", outputs, "concat", axis=4))
    assembled = writer.op("Concat", blocks, "concat", axis=1)  # [rows, m, d, cols, m, d*K]
    output = writer.reshape(assembled, [1, m * d * rows, m * d * cols, kernels])
    if m * d * rows != site.height or m * d * cols != site.width:
        output = writer.slice(output, [0, 0], [site.height, site.width], [1, 2])
    if bias is not None:
        output = writer.op("Add", [output, writer.constant("bias", bias.astype(np.float32))], "bias")
    writer.nodes.append(
        helper.make_node("Transpose", [output], [site.node.output[0]], name=writer.name("nchw"), perm=[0, 3, 1, 2])
    )


def apply_winograd(
    model: onnx.ModelProto, outputs: int = 4, min_channels: int = 256, max_ratio: float = MAX_MULTIPLY_RATIO
) -> tuple[onnx.ModelProto, list[ConvSite], list[ConvSite]]:
    """A copy of ``model`` with its eligible 3x3 convolutions in Winograd F(outputs, 3) form, the
    sites rewritten and those left direct because the tiles' padding would eat the saving."""
    algorithm = ALGORITHMS[outputs]
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    candidates = find_sites(rewritten, min_channels)
    sites = [site for site in candidates if site_ratio(site, outputs) <= max_ratio]
    unprofitable = [site for site in candidates if site not in sites]
    initializers = {tensor.name: tensor for tensor in rewritten.graph.initializer}
    replaced = {site.node.name: site for site in sites}
    writer = GraphWriter("winograd")
    hwc_inputs: dict[str, str] = {}  # one NCHW -> NHWC transpose per input (the ASPP branches share one)
    nodes: list[onnx.NodeProto] = []
    for node in rewritten.graph.node:
        site = replaced.get(node.name)
        if site is None:
            nodes.append(node)
            continue
        first = len(writer.nodes)
        if node.input[0] not in hwc_inputs:
            hwc_inputs[node.input[0]] = writer.op("Transpose", [node.input[0]], "nhwc", perm=[0, 2, 3, 1])
        weight = numpy_helper.to_array(initializers[node.input[1]])
        bias = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
        writer.prefix = f"{node.name}/winograd"
        rewrite_conv(site, weight, bias, algorithm, writer, hwc_inputs[node.input[0]])
        nodes.extend(writer.nodes[first:])
    rewritten.graph.initializer.extend(writer.initializers)
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(nodes)
    used = {name for node in rewritten.graph.node for name in node.input}
    kept = [tensor for tensor in rewritten.graph.initializer if tensor.name in used]
    del rewritten.graph.initializer[:]
    rewritten.graph.initializer.extend(kept)
    del rewritten.graph.value_info[:]
    return rewritten, sites, unprofitable


def site_summary(sites: list, tile: int) -> list[dict]:
    """What was rewritten, with each site's multiplications relative to the direct convolution."""
    return [
        {
            "node": site.node.name,
            "channels_in": site.channels_in,
            "channels_out": site.channels_out,
            "height": site.height,
            "width": site.width,
            "dilation": site.dilation,
            "multiply_ratio": round(site_ratio(site, tile), 4),
        }
        for site in sites
    ]


def rewrite_file(source: Path, destination: Path, tile: int, min_channels: int) -> tuple[list[dict], list[dict]]:
    """:func:`apply_winograd` from file to file (atomically): the sites rewritten and those left direct
    (too much padding), as :func:`site_summary` records."""
    if not source.is_file():
        raise UserError(f"ONNX model {source} does not exist: run simplify_onnx first")
    model = read_onnx(source)
    rewritten, sites, unprofitable = apply_winograd(model, outputs=tile, min_channels=min_channels)
    for site in unprofitable:
        LOG.info(
            "%s stays direct: its tiles would do %.2fx the direct multiplications (limit %.2f)",
            site.node.name,
            site_ratio(site, tile),
            MAX_MULTIPLY_RATIO,
        )
    if not sites:
        LOG.warning("no 3x3 convolution with >= %d input channels in %s: the model is unchanged", min_channels, source)
    save_onnx(rewritten, destination)
    return site_summary(sites, tile), site_summary(unprofitable, tile)
