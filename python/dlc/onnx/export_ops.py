"""One exporter per dlc primitive: elementwise ops, shapes, matrix products, convolutions, pooling,
normalization. Each writes ONNX nodes through the `Exporter`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Node, np_dtype
from ..ops.conv import resolve_padding
from .export_core import INT64_MAX, ONNX_TYPES, Exporter, exports, tensor_proto
from .export_quant import int8_operands


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
           "minimum": "Min", "eq": "Equal", "lt": "Less", "gt": "Greater", "le": "LessOrEqual",
           "ge": "GreaterOrEqual"}
_UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
          "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "erf": "Erf", "sign": "Sign",
          "softplus": "Softplus"}


@exports(*_BINARY)
def _binary(ex: Exporter, n: Node) -> None:
    ex.add(_BINARY[n.op], [ex.name(n.inputs[0]), ex.name(n.inputs[1])], [ex.out(n)])


@exports("ne")
def _ne(ex: Exporter, n: Node) -> None:
    eq = ex.add("Equal", [ex.name(n.inputs[0]), ex.name(n.inputs[1])])[0]
    ex.add("Not", [eq], [ex.out(n)])


@exports(*_UNARY)
def _unary(ex: Exporter, n: Node) -> None:
    ex.add(_UNARY[n.op], [ex.name(n.inputs[0])], [ex.out(n)])


def _scalar(ex: Exporter, n: Node) -> str:
    dt = ex.g.values[n.inputs[0]].dtype
    return ex.const(np.array(n.attr("value"), dtype=np.float64 if dt == "f64" else np.float32), "scalar")


@exports("add_scalar", "mul_scalar", "pow_scalar")
def _with_scalar(ex: Exporter, n: Node) -> None:
    op = {"add_scalar": "Add", "mul_scalar": "Mul", "pow_scalar": "Pow"}[n.op]
    ex.add(op, [ex.name(n.inputs[0]), _scalar(ex, n)], [ex.out(n)])


@exports("rsqrt", "square")
def _rsqrt_square(ex: Exporter, n: Node) -> None:
    x = ex.name(n.inputs[0])
    if n.op == "square":
        ex.add("Mul", [x, x], [ex.out(n)])
    else:
        ex.add("Reciprocal", ex.add("Sqrt", [x]), [ex.out(n)])


@exports("gelu")
def _gelu(ex: Exporter, n: Node) -> None:
    """0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation, written out (Gelu is opset 20)."""
    x = ex.name(n.inputs[0])
    dt = np.float64 if ex.g.values[n.inputs[0]].dtype == "f64" else np.float32
    c = lambda v: ex.const(np.array(v, dtype=dt), "k")  # noqa: E731
    if n.attr("approximate") == "tanh":
        cube = ex.add("Mul", [ex.add("Mul", [x, x])[0], x])[0]
        inner = ex.add("Add", [x, ex.add("Mul", [cube, c(0.044715)])[0]])[0]
        t = ex.add("Tanh", [ex.add("Mul", [inner, c(np.sqrt(2.0 / np.pi))])[0]])[0]
    else:
        t = ex.add("Erf", [ex.add("Mul", [x, c(1.0 / np.sqrt(2.0))])[0]])[0]
    half = ex.add("Mul", [x, c(0.5)])[0]
    ex.add("Mul", [half, ex.add("Add", [t, c(1.0)])[0]], [ex.out(n)])


@exports("leaky_relu")
def _leaky(ex: Exporter, n: Node) -> None:
    ex.add("LeakyRelu", [ex.name(n.inputs[0])], [ex.out(n)], alpha=float(n.attr("alpha")))


@exports("cast")
def _cast(ex: Exporter, n: Node) -> None:
    ex.add("Cast", [ex.name(n.inputs[0])], [ex.out(n)], to=ONNX_TYPES[n.attr("dtype")])


@exports("where")
def _where(ex: Exporter, n: Node) -> None:
    ex.add("Where", [ex.name(v) for v in n.inputs], [ex.out(n)])


@exports("broadcast_to")
def _broadcast(ex: Exporter, n: Node) -> None:
    ex.add("Expand", [ex.name(n.inputs[0]), ex.shapetensor_proto(ex.g.values[n.outputs[0]].shape)], [ex.out(n)])


@exports("reshape", "flatten")
def _reshape(ex: Exporter, n: Node) -> None:
    shape = ex.g.values[n.outputs[0]].shape
    symbolic = [i for i, d in enumerate(shape) if not isinstance(d, int)]
    if len(symbolic) == 1:  # one unknown entry: ONNX infers it from -1
        target = ex.const(np.array([-1 if i == symbolic[0] else d for i, d in enumerate(shape)], np.int64),
                          "shape")
    else:
        target = ex.shapetensor_proto(shape)
    ex.add("Reshape", [ex.name(n.inputs[0]), target], [ex.out(n)])


@exports("squeeze")
def _squeeze(ex: Exporter, n: Node) -> None:
    axes = ex.const(np.array(n.attr("axis"), dtype=np.int64), "axes")
    ex.add("Squeeze", [ex.name(n.inputs[0]), axes], [ex.out(n)])


@exports("unsqueeze")
def _unsqueeze(ex: Exporter, n: Node) -> None:
    axes = ex.const(np.array([n.attr("axis")], dtype=np.int64), "axes")
    ex.add("Unsqueeze", [ex.name(n.inputs[0]), axes], [ex.out(n)])


@exports("transpose", "permute")
def _transpose(ex: Exporter, n: Node) -> None:
    rank = ex.g.values[n.inputs[0]].rank
    perm = n.attr("perm")
    perm = list(range(rank))[::-1] if perm is None else [int(p) % rank for p in perm]
    ex.add("Transpose", [ex.name(n.inputs[0])], [ex.out(n)], perm=perm)


@exports("concat")
def _concat(ex: Exporter, n: Node) -> None:
    ex.add("Concat", [ex.name(v) for v in n.inputs], [ex.out(n)], axis=int(n.attr("axis")))


@exports("slice")
def _slice(ex: Exporter, n: Node) -> None:
    step = int(n.attr("step"))
    end = n.attr("end")
    end = (INT64_MAX if step > 0 else -INT64_MAX) if end is None else int(end)
    arr = lambda v: ex.const(np.array([v], dtype=np.int64), "s")  # noqa: E731
    ex.add("Slice", [ex.name(n.inputs[0]), arr(int(n.attr("start"))), arr(end), arr(int(n.attr("axis"))),
                     arr(step)], [ex.out(n)])


def _swap_last(ex: Exporter, v: int) -> str:
    rank = ex.g.values[v].rank
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return ex.add("Transpose", [ex.name(v)], perm=perm)[0]


@exports("matmul")
def _matmul(ex: Exporter, n: Node) -> None:
    if n.attr("precision") == "int8":  # x @ W (trans_a is never int8): QDQ around both
        a, b = int8_operands(ex, n, channels_first=bool(n.attr("trans_b")))
        if n.attr("trans_b"):
            b = ex.add("Transpose", [b], perm=[1, 0])[0]
        ex.add("MatMul", [a, b], [ex.out(n)])
        return
    a = _swap_last(ex, n.inputs[0]) if n.attr("trans_a") else ex.name(n.inputs[0])
    b = _swap_last(ex, n.inputs[1]) if n.attr("trans_b") else ex.name(n.inputs[1])
    ex.add("MatMul", [a, b], [ex.out(n)])


@exports("softmax", "log_softmax")
def _softmax(ex: Exporter, n: Node) -> None:
    op = "Softmax" if n.op == "softmax" else "LogSoftmax"
    ex.add(op, [ex.name(n.inputs[0])], [ex.out(n)], axis=int(n.attr("axis")))


@exports("sum", "mean", "max", "min")
def _reduce(ex: Exporter, n: Node) -> None:
    rank = ex.g.values[n.inputs[0]].rank
    axis = n.attr("axis")
    axes = list(range(rank)) if axis is None else [int(a) % rank for a in
                                                   (axis if isinstance(axis, (tuple, list)) else [axis])]
    keep = int(bool(n.attr("keepdims")))
    x = ex.name(n.inputs[0])
    if n.op == "sum":
        ex.add("ReduceSum", [x, ex.const(np.array(axes, dtype=np.int64), "axes")], [ex.out(n)], keepdims=keep)
    else:
        op = {"mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}[n.op]
        ex.add(op, [x], [ex.out(n)], axes=axes, keepdims=keep)


@exports("global_avg_pool")
def _gap(ex: Exporter, n: Node) -> None:
    ex.add("ReduceMean", [ex.name(n.inputs[0])], [ex.out(n)], axes=[2, 3], keepdims=0)


@exports("embedding_lookup", "gather")
def _embedding(ex: Exporter, n: Node) -> None:
    ex.add("Gather", [ex.name(n.inputs[0]), ex.name(n.inputs[1])], [ex.out(n)], axis=0)


@exports("fill")
def _fill(ex: Exporter, n: Node) -> None:
    t = ex.g.values[n.outputs[0]]
    value = np.array([n.attr("value")], dtype=np_dtype(t.dtype))
    ex.add("ConstantOfShape", [ex.shapetensor_proto(t.shape)], [ex.out(n)], value=tensor_proto(value, ex.fresh("v")))


@exports("triangle")
def _triangle(ex: Exporter, n: Node) -> None:
    """Trilu of ones of the (possibly symbolic) shape: a causal mask over a sequence length bound at run time."""
    t = ex.g.values[n.outputs[0]]
    ones = ex.add("ConstantOfShape", [ex.shapetensor_proto(t.shape)],
                  value=tensor_proto(np.ones(1, dtype=np_dtype(t.dtype)), ex.fresh("one")))[0]
    ex.add("Trilu", [ones, ex.const(np.array(n.attr("k"), dtype=np.int64), "k")], [ex.out(n)],
           upper=int(n.attr("upper")))


@exports("scatter_add")
def _scatter_add(ex: Exporter, n: Node) -> None:
    """ScatterND with reduction="add" (opset 16) onto zeros: the rows of src summed at index."""
    t = ex.g.values[n.outputs[0]]
    zeros = ex.add("ConstantOfShape", [ex.shapetensor_proto(t.shape)],
                   value=tensor_proto(np.zeros(1, dtype=np_dtype(t.dtype)), ex.fresh("zero")))[0]
    index = ex.add("Cast", [ex.name(n.inputs[1])], to=ONNX_TYPES["i64"])[0]
    index = ex.add("Unsqueeze", [index, ex.const(np.array([-1], dtype=np.int64), "axes")])[0]
    ex.add("ScatterND", [zeros, index, ex.name(n.inputs[0])], [ex.out(n)], reduction="add")


@exports("pad")
def _pad(ex: Exporter, n: Node) -> None:
    from ..ops.pool import full_pads
    rank = ex.g.values[n.inputs[0]].rank
    pairs = full_pads(tuple(n.attr("pads")), rank)
    pads = [p[0] for p in pairs] + [p[1] for p in pairs]
    dt = np.float64 if ex.g.values[n.inputs[0]].dtype == "f64" else np.float32
    ex.add("Pad", [ex.name(n.inputs[0]), ex.const(np.array(pads, np.int64), "pads"),
                   ex.const(np.array(n.attr("value"), dt), "value")], [ex.out(n)], mode="constant")


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


@exports("conv2d_core")
def _conv(ex: Exporter, n: Node) -> None:
    x, w = n.inputs
    wt = ex.g.values[w]
    kernel = tuple(int(d) for d in wt.shape[2:])
    hw = tuple(ex.g.values[x].shape[2:])
    dil = _pair(n.attr("dilation"))
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dil))
    stride = _pair(n.attr("stride"))
    t, b, l, r = resolve_padding(n.attr("padding"), hw, extent, tuple(stride))  # type: ignore[arg-type]
    inputs = list(int8_operands(ex, n, channels_first=True)) if n.attr("precision") == "int8" \
        else [ex.name(x), ex.name(w)]
    out = n.outputs[0]
    bias = _bias_add(ex, n)
    if bias is not None:
        add_node, bias_value = bias
        ex.skip.add(id(add_node))
        inputs.append(_vector(ex, bias_value))
        out = add_node.outputs[0]
    ex.add("Conv", inputs, [ex.name(out)], kernel_shape=list(kernel), strides=stride, pads=[t, l, b, r],
           dilations=dil, group=int(n.attr("groups")))


def _bias_add(ex: Exporter, n: Node) -> tuple[Node, int] | None:
    """The `add` of a known per-channel bias [C, 1, 1] right after a convolution, if it is its only reader."""
    readers = ex.consumers.get(n.outputs[0], [])
    if len(readers) != 1 or readers[0].op != "add" or any(v == n.outputs[0] for v, _ in ex.g.outputs):
        return None
    add = readers[0]
    other = add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0]
    channels = ex.g.values[n.outputs[0]].shape[1]
    if other in ex.known and ex.known[other].size == channels and ex.g.values[add.outputs[0]] == \
            ex.g.values[n.outputs[0]]:
        return add, other
    return None


def _vector(ex: Exporter, v: int) -> str:
    """A known per-channel value as a 1-D initializer, under its parameter's name."""
    arr = ex.known[v].reshape(-1)
    name = ex.origin.get(v) or ex.fresh("bias")
    ex.inits.append(tensor_proto(arr, name))
    return name


@exports("conv_transpose2d_core")
def _conv_transpose(ex: Exporter, n: Node) -> None:
    x, w = n.inputs
    kernel = [int(d) for d in ex.g.values[w].shape[2:]]
    ph, pw = _pair(n.attr("padding"))
    inputs = list(int8_operands(ex, n, channels_first=True)) if n.attr("precision") == "int8" \
        else [ex.name(x), ex.name(w)]
    out = n.outputs[0]
    bias = _bias_add(ex, n)
    if bias is not None:
        ex.skip.add(id(bias[0]))
        inputs.append(_vector(ex, bias[1]))
        out = bias[0].outputs[0]
    ex.add("ConvTranspose", inputs, [ex.name(out)], kernel_shape=kernel, strides=_pair(n.attr("stride")),
           pads=[ph, pw, ph, pw], output_padding=_pair(n.attr("output_padding")),
           dilations=_pair(n.attr("dilation")), group=int(n.attr("groups")))


@exports("max_pool2d", "avg_pool2d")
def _pool(ex: Exporter, n: Node) -> None:
    k = _pair(n.attr("kernel_size"))
    stride = k if n.attr("stride") is None else _pair(n.attr("stride"))
    ph, pw = _pair(n.attr("padding"))
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": stride, "pads": [ph, pw, ph, pw]}
    if n.op == "avg_pool2d":
        attrs["count_include_pad"] = int(bool(n.attr("count_include_pad")))
    ex.add("MaxPool" if n.op == "max_pool2d" else "AveragePool", [ex.name(n.inputs[0])], [ex.out(n)], **attrs)


@exports("upsample")
def _upsample(ex: Exporter, n: Node) -> None:
    sh, sw = _pair(n.attr("scale_factor"))
    dt = np.float32
    scales = ex.const(np.array([1, 1, sh, sw], dt), "scales")
    if n.attr("mode") == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode":
                 "align_corners" if n.attr("align_corners") else "pytorch_half_pixel"}
    ex.add("Resize", [ex.name(n.inputs[0]), "", scales], [ex.out(n)], **attrs)


@exports("batch_norm_eval")
def _batch_norm(ex: Exporter, n: Node) -> None:
    ex.add("BatchNormalization", [ex.name(v) for v in n.inputs], [ex.out(n)], epsilon=float(n.attr("eps")))


@exports("layer_norm_core")
def _layer_norm(ex: Exporter, n: Node) -> None:
    ex.add("LayerNormalization", [ex.name(v) for v in n.inputs], [ex.out(n)], axis=-1,
           epsilon=float(n.attr("eps")))
