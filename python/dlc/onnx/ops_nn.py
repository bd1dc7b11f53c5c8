"""Layers: Conv/ConvTranspose as conv2d, Gemm and MatMul(+Add) as dense, BatchNormalization as batch_norm,
LayerNormalization as layer_norm (when their weights are constants, so they become the layer's parameters);
the same ops with computed weights, and the normalizations dlc has no layer for, as decompositions."""

from __future__ import annotations

from typing import Any

import numpy as np

from .attention import match_attention
from .registry import converts
from .values import Node, Tensor, Unsupported, dims_text, literal


def conv_pads(node: Node, in_hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              dilation: tuple[int, ...]) -> list[int]:
    """ONNX pads [begin..., end...] from `pads` or `auto_pad`."""
    n = len(kernel)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(node.attr("pads", [0] * 2 * n))
        return pads
    if auto == "VALID":
        return [0] * 2 * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto!r}")
    begin, end = [], []
    for i in range(n):
        out = -(-in_hw[i] // stride[i])
        total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i])
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - small if auto == "SAME_UPPER" else small)
    return begin + end


def _to_2d(im: Any, x: Tensor, what: str) -> tuple[str, bool]:
    """An NCHW variable for x; 1-D ops (NCW) run as 2-D ones over a height of 1."""
    if x.rank == 4:
        return x.name, False
    if x.rank == 3:
        return im.temp(f"unsqueeze({x.name}, 2)", "as_2d"), True
    raise Unsupported(f"{what} over {x.rank - 2} spatial dimensions (dlc has 1-D and 2-D)")


@converts("Conv")
def conv(im: Any, node: Node) -> None:
    node.only("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad")
    x = im.tensor(node.inputs[0])
    xs, one_d = _to_2d(im, x, "Conv")
    w_name = node.inputs[1]
    w_const = im.const(w_name)
    w_shape = w_const.shape if w_const is not None else im.tensor(w_name).static("Conv's weight")
    k = tuple(w_shape[2:])
    n = len(k)
    stride = tuple(node.attr("strides", [1] * n))
    dil = tuple(node.attr("dilations", [1] * n))
    if node.attr("kernel_shape") is not None and tuple(node.attr("kernel_shape")) != k:
        raise Unsupported(f"kernel_shape {node.attr('kernel_shape')} differs from the weight's {list(k)}")
    pads = conv_pads(node, tuple(x.static("Conv with auto_pad")[2:]) if node.attr("auto_pad", "NOTSET")
                     not in ("NOTSET", "", "VALID") else (), k, stride, dil)
    if one_d:
        k, stride, dil, pads = (1, *k), (1, *stride), (1, *dil), [0, pads[0], 0, pads[1]]
    padding = [pads[0], pads[2], pads[1], pads[3]]  # dlc: [top, bottom, left, right]
    group = int(node.attr("group", 1))
    geo = f"stride={literal(list(stride))}, padding={literal(padding)}, dilation={literal(list(dil))}" + \
          (f", groups={group}" if group != 1 else "")
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias_const = im.const(bias_name) if bias_name else None
    out = node.outputs[0]
    if w_const is not None and (not bias_name or bias_const is not None):
        naming, layer = im.layer_call(w_name, node.proto.name or out)
        w = w_const.reshape(w_shape[0], w_shape[1], *k)
        im.layer_param(layer, "weight", w)
        if bias_const is not None:
            im.layer_param(layer, "bias", bias_const.reshape(-1))
        expr = (f"conv2d({xs}, {w_shape[0]}, kernel_size={literal(list(k))}, {geo}"
                f"{'' if bias_const is not None else ', bias=false'}, {naming})")
    else:
        w = im.tensor(w_name).name
        if one_d:
            w = im.temp(f"unsqueeze({w}, 2)", "w_2d")
        expr = f"conv2d_core({xs}, {w}, {geo})"
        if bias_name:
            b = im.tensor(bias_name).name
            expr = im.temp(expr, "conv") + f" + reshape({b}, [-1, 1, 1])"
    if one_d:
        expr = f"squeeze({im.temp(expr, 'conv2d')}, 2)"
    im.emit(out, expr)


@converts("ConvTranspose")
def conv_transpose(im: Any, node: Node) -> None:
    node.only("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "output_padding",
              "output_shape")
    x = im.tensor(node.inputs[0])
    if x.rank != 4:
        raise Unsupported(f"ConvTranspose over {x.rank - 2} spatial dimensions (dlc has 2-D)")
    w = im.need_const(node.inputs[1], "ConvTranspose's weight")
    k = tuple(w.shape[2:])
    stride = tuple(node.attr("strides", [1, 1]))
    dil = tuple(node.attr("dilations", [1, 1]))
    group = int(node.attr("group", 1))
    in_hw = x.static("ConvTranspose")[2:]
    out_pad = list(node.attr("output_padding", [0, 0]))
    natural = [stride[i] * (in_hw[i] - 1) + out_pad[i] + (k[i] - 1) * dil[i] + 1 for i in range(2)]
    auto = node.attr("auto_pad", "NOTSET")
    if node.attr("output_shape") is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(node.attr("output_shape"))[-2:] if node.attr("output_shape") is not None \
            else [in_hw[i] * stride[i] for i in range(2)]
        begin, end = [0, 0], [0, 0]
        for i in range(2):
            total = natural[i] - target[i]
            if total < 0:
                out_pad[i] -= total
                total = 0
            small = total // 2
            # ONNX: SAME_UPPER puts the smaller half first, any other mode the larger half.
            begin[i], end[i] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
        pads = begin + end
    elif auto in ("NOTSET", "", "VALID"):
        pads = list(node.attr("pads", [0, 0, 0, 0])) if auto != "VALID" else [0, 0, 0, 0]
    else:
        raise Unsupported(f"auto_pad={auto!r}")
    if any(p >= s and p > 0 for p, s in zip(out_pad, stride)) and any(p > 0 for p in out_pad):
        if any(p >= max(s, d) for p, s, d in zip(out_pad, stride, dil)):
            raise Unsupported(f"output_padding {out_pad} must be smaller than the stride {list(stride)}")
    symmetric = pads[0] == pads[2] and pads[1] == pads[3]
    padding = [pads[0], pads[1]] if symmetric else [0, 0]
    layer = im.layer_name(node.inputs[1], node.proto.name or node.outputs[0])
    im.layer_param(layer, "weight", w)
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    if bias_name:
        im.layer_param(layer, "bias", im.need_const(bias_name, "ConvTranspose's bias").reshape(-1))
    expr = (f"conv_transpose2d({x.name}, {w.shape[1] * group}, kernel_size={literal(list(k))}, "
            f"stride={literal(list(stride))}, padding={literal(padding)}, output_padding={literal(out_pad)}, "
            f"dilation={literal(list(dil))}" + (f", groups={group}" if group != 1 else "")
            + ("" if bias_name else ", bias=false") + f", name=\"{layer}\")")
    if not symmetric:
        full = im.temp(expr, "deconv")
        h = natural[0]
        wd = natural[1]
        rows = im.temp(f"slice({full}, 2, {pads[0]}, {h - pads[2]})", "crop")
        expr = f"slice({rows}, 3, {pads[1]}, {wd - pads[3]})"
    im.emit(node.outputs[0], expr)


def _dense(im: Any, node: Node, x: str, w: np.ndarray, bias: np.ndarray | None, out: str) -> None:
    naming, layer = im.layer_call(node.inputs[1], node.proto.name or out)
    im.layer_param(layer, "weight", w)
    if bias is not None:
        im.layer_param(layer, "bias", bias)
    im.emit(out, f"dense({x}, {w.shape[1]}{'' if bias is not None else ', bias=false'}, {naming})")


@converts("Gemm")
def gemm(im: Any, node: Node) -> None:
    node.only("alpha", "beta", "transA", "transB", "broadcast")  # broadcast: opsets before 7, C as NumPy does
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    a = im.tensor(node.inputs[0])
    if a.rank != 2:
        raise Unsupported(f"Gemm's A must be a matrix, got rank {a.rank}")
    x = im.temp(f"transpose({a.name})", "a_t") if node.attr("transA", 0) else a.name
    b_const = im.const(node.inputs[1])
    c_name = node.inputs[2] if len(node.inputs) > 2 else ""
    c_const = im.const(c_name) if c_name else None
    if b_const is not None and (not c_name or c_const is not None):
        w = (b_const.T if node.attr("transB", 0) else b_const) * np.asarray(alpha, b_const.dtype)
        units = w.shape[1]
        bias = None
        if c_const is not None and c_const.size in (1, units) and (c_const.ndim < 2 or c_const.shape[0] == 1):
            bias = np.broadcast_to(c_const.reshape(-1) * np.asarray(beta, c_const.dtype), (units,)).copy()
            _dense(im, node, x, np.ascontiguousarray(w), bias, node.outputs[0])
            return
        if c_const is None:
            _dense(im, node, x, np.ascontiguousarray(w), None, node.outputs[0])
            return
        y = im.temp(f"dense({x}, {units}, bias=false, name=\"{_dense_name(im, node, w)}\")", "gemm")
        im.emit(node.outputs[0], f"{y} + {im.param(c_const * np.asarray(beta, c_const.dtype), 'gemm_c')}")
        return
    b = im.tensor(node.inputs[1]).name
    expr = f"matmul({x}, {b}, trans_b={literal(bool(node.attr('transB', 0)))})"
    if alpha != 1.0:
        expr = f"{im.temp(expr, 'ab')} * {literal(alpha)}"
    if c_name:
        c = im.scalar_or_tensor(c_name)
        prod = im.temp(expr, "ab")
        expr = f"{prod} + {c}" if beta == 1.0 else f"{prod} + {c} * {literal(beta)}" if not _num(c) \
            else f"{prod} + {literal(float(c) * beta)}"
    im.emit(node.outputs[0], expr)


def _num(text: str) -> bool:
    return not (text[:1].isalpha() or text[:1] == "_")


def _dense_name(im: Any, node: Node, w: np.ndarray) -> str:
    layer = im.layer_name(node.inputs[1], node.proto.name or node.outputs[0])
    im.layer_param(layer, "weight", w)
    return layer


@converts("MatMul")
def matmul(im: Any, node: Node) -> None:
    node.only()
    if match_attention(im, node):
        return
    a_const, b_const = im.const(node.inputs[0]), im.const(node.inputs[1])
    out = node.outputs[0]
    if a_const is None and b_const is not None and b_const.ndim == 2 and im.tensor(node.inputs[0]).rank >= 2:
        x = im.tensor(node.inputs[0]).name
        add = im.sole_consumer(out, "Add")
        if add is not None:  # MatMul + Add of a bias vector: one dense layer
            other = [n for n in add.input if n != out]
            bias = im.const(other[0]) if len(other) == 1 else None
            units = b_const.shape[1]
            if bias is not None and bias.size == units and bias.shape[-1] == units and bias.ndim <= 2 \
                    and bias.dtype == b_const.dtype:
                _dense(im, node, x, b_const, bias.reshape(-1).copy(), out)
                im.absorb(add, im.get(out))
                return
        _dense(im, node, x, b_const, None, out)
        return
    a, b = im.tensor(node.inputs[0]), im.tensor(node.inputs[1])
    an, bn = a.name, b.name
    if a.rank == 1:
        an = im.temp(f"unsqueeze({an}, 0)", "row")
    if b.rank == 1:
        bn = im.temp(f"unsqueeze({bn}, 1)", "col")
    expr = f"{an} @ {bn}"
    if a.rank == 1:
        expr = f"squeeze({im.temp(expr, 'mm')}, -2)"
    if b.rank == 1:
        expr = f"squeeze({im.temp(expr, 'mm')}, -1)"
    im.emit(out, expr)


@converts("BatchNormalization")
def batch_norm(im: Any, node: Node) -> None:
    node.only("epsilon", "momentum", "spatial", "is_test", "training_mode", "consumed_inputs")
    if node.attr("training_mode", 0):
        raise Unsupported("training_mode=1 (batch statistics at inference) is not supported")
    if node.attr("spatial", 1) != 1:
        raise Unsupported("spatial=0 is not supported")
    if any(im.is_used(o) for o in node.outputs[1:]):
        raise Unsupported("the running-statistics outputs (training mode) are not supported")
    x = im.tensor(node.inputs[0])
    eps = float(node.attr("epsilon", 1e-5))
    consts = [im.const(n) for n in node.inputs[1:5]]
    if all(c is not None for c in consts) and all(c.ndim == 1 for c in consts):  # type: ignore[union-attr]
        layer = im.layer_name(node.inputs[1], node.proto.name or node.outputs[0])
        for local, c in zip(("weight", "bias", "running_mean", "running_var"), consts):
            im.layer_param(layer, local, c)
        momentum = 1.0 - float(node.attr("momentum", 0.9))
        im.emit(node.outputs[0], f"batch_norm({x.name}, momentum={literal(momentum)}, eps={literal(eps)}, "
                                 f"name=\"{layer}\")")
        return
    args = ", ".join(im.tensor(n).name for n in node.inputs[1:5])
    im.emit(node.outputs[0], f"batch_norm_eval({x.name}, {args}, eps={literal(eps)})")


def _normalize(im: Any, x: str, axes: list[int], eps: float, stats: list[str] | None = None) -> str:
    """(x - mean) / sqrt(var + eps) over `axes`, written with dlc's reductions; with `stats`, the ONNX names
    of LayerNormalization's Mean and InvStdDev outputs are given those values."""
    ax = literal(axes)
    mu = im.temp(f"mean({x}, axis={ax}, keepdims=true)", "mu")
    d = im.temp(f"{x} - {mu}", "centered")
    var = im.temp(f"mean({d} * {d}, axis={ax}, keepdims=true)", "var")
    inv = im.temp(f"rsqrt({var} + {literal(eps)})", "inv_std")
    if stats:
        for name, value in zip(stats, (mu, inv)):
            if name and im.is_used(name):
                im.emit(name, value)
    return im.temp(f"{d} * {inv}", "normed")


@converts("LayerNormalization")
def layer_norm(im: Any, node: Node) -> None:
    node.only("axis", "epsilon", "stash_type")
    x = im.tensor(node.inputs[0])
    axis = int(node.attr("axis", -1)) % x.rank
    eps = float(node.attr("epsilon", 1e-5))
    scale = im.const(node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = im.const(bias_name) if bias_name else None
    width = x.shape[-1] if x.shape else None
    stats = [o for o in node.outputs[1:] if im.is_used(o)]
    if axis == x.rank - 1 and scale is not None and scale.size == width and (not bias_name or bias is not None) \
            and not stats:
        layer = im.layer_name(node.inputs[1], node.proto.name or node.outputs[0])
        im.layer_param(layer, "weight", scale.reshape(-1))
        im.layer_param(layer, "bias", bias.reshape(-1) if bias is not None else np.zeros_like(scale.reshape(-1)))
        im.emit(node.outputs[0], f"layer_norm({x.name}, eps={literal(eps)}, name=\"{layer}\")")
        return
    y = _normalize(im, x.name, list(range(axis, x.rank)), eps, node.outputs[1:])
    y = im.temp(f"{y} * {im.tensor(node.inputs[1]).name}", "scaled")
    if bias_name:
        y = f"{y} + {im.tensor(bias_name).name}"
    im.emit(node.outputs[0], y)


@converts("RMSNormalization")
def rms_norm(im: Any, node: Node) -> None:
    """x / sqrt(mean(x^2) + eps) * scale over the axes from `axis` (ONNX opset 23)."""
    node.only("axis", "epsilon", "stash_type")
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"RMSNormalization of a {x.dtype} tensor")
    axes = literal(list(range(int(node.attr("axis", -1)) % x.rank, x.rank)))
    ms = im.temp(f"mean({x.name} * {x.name}, axis={axes}, keepdims=true)", "mean_square")
    im.emit(node.outputs[0], f"{x.name} * rsqrt({ms} + {literal(float(node.attr('epsilon', 1e-5)))}) * "
                             f"{im.tensor(node.inputs[1]).name}")


@converts("InstanceNormalization")
def instance_norm(im: Any, node: Node) -> None:
    node.only("epsilon")
    x = im.tensor(node.inputs[0])
    eps = float(node.attr("epsilon", 1e-5))
    y = _normalize(im, x.name, list(range(2, x.rank)), eps)
    trail = (1,) * (x.rank - 2)
    scale = im.need_const(node.inputs[1], "InstanceNormalization's scale")
    bias = im.need_const(node.inputs[2], "InstanceNormalization's bias")
    s = im.param(scale.reshape(-1, *trail), "instance_norm_scale")
    b = im.param(bias.reshape(-1, *trail), "instance_norm_bias")
    im.emit(node.outputs[0], f"{y} * {s} + {b}")


@converts("LRN")
def lrn(im: Any, node: Node) -> None:
    """Local response normalization across channels: the windowed channel sum of squares is an average
    pool over a [N, 1, C, H*W] view, after padding the channel axis."""
    node.only("size", "alpha", "beta", "bias")
    x = im.tensor(node.inputs[0])
    if x.rank != 4:
        raise Unsupported(f"LRN of a rank-{x.rank} tensor (dlc supports NCHW)")
    _, c, h, w = x.shape
    if not all(isinstance(d, int) for d in (c, h, w)):
        raise Unsupported("LRN needs static C, H and W")
    size = int(node.attr("size"))
    alpha, beta, bias = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = im.temp(f"reshape(square({x.name}), [-1, 1, {c}, {h * w}])", "sq")
    padded = im.temp(f"pad({sq}, [{before}, {after}, 0, 0])", "sq_padded")
    window = im.temp(f"reshape(avg_pool2d({padded}, kernel_size=[{size}, 1], stride=1), [-1, {c}, {h}, {w}])",
                     "window_mean")
    # sum = size * mean, so alpha / size * sum = alpha * mean.
    denom = im.temp(f"({window} * {literal(alpha)} + {literal(bias)}) ** {literal(-beta)}", "lrn_scale")
    im.emit(node.outputs[0], f"{x.name} * {denom}")


@converts("Dropout")
def dropout(im: Any, node: Node) -> None:
    node.only("ratio", "seed", "is_test")
    if len(node.outputs) > 1 and im.is_used(node.outputs[1]):
        raise Unsupported("the mask output is not supported")
    ratio = float(node.attr("ratio", 0.5))
    if node.opset >= 12:
        if len(node.inputs) > 1 and node.inputs[1]:
            ratio = float(im.need_const(node.inputs[1], "Dropout's ratio").reshape(()))
        if len(node.inputs) > 2 and node.inputs[2]:
            if bool(im.need_const(node.inputs[2], "Dropout's training_mode").reshape(())):
                raise Unsupported("training_mode=true (a random mask at inference) is not supported")
    x = im.tensor(node.inputs[0])
    if not 0.0 <= ratio < 1.0:
        raise Unsupported(f"ratio={ratio}")
    layer = im.layer_name(None, node.proto.name or node.outputs[0])
    im.emit(node.outputs[0], f"dropout({x.name}, rate={literal(ratio)}, name=\"{layer}\")")


@converts("Softmax", "LogSoftmax")
def softmax(im: Any, node: Node) -> None:
    node.only("axis")
    fn = "softmax" if node.op == "Softmax" else "log_softmax"
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"{node.op} of a {x.dtype} tensor")
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1)) % max(x.rank, 1)
    if node.opset >= 13 or axis == x.rank - 1:
        im.emit(node.outputs[0], f"{fn}({x.name}, axis={axis})")
        return
    # Before opset 13 the input is flattened to 2-D at `axis` and normalized over the second part.
    trailing = x.static(f"{node.op} over several axes")[axis:]
    flat = im.temp(f"reshape({x.name}, [-1, {int(np.prod(trailing))}])", "flat")
    y = im.temp(f"{fn}({flat}, axis=1)", fn)
    im.emit(node.outputs[0], f"reshape({y}, {dims_text(x.shape)})")
