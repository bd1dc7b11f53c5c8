"""Elementwise ONNX ops: arithmetic with NumPy broadcasting, comparisons, activations (some as decompositions
into dlc's elementwise ops, which fusion turns back into one kernel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import converts
from .values import Node, Tensor, Unsupported, literal

_INFIX = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Pow": "**", "Equal": "==", "Less": "<",
          "Greater": ">", "LessOrEqual": "<=", "GreaterOrEqual": ">="}
_UNARY = {"Neg": "neg", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
          "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Sign": "sign",
          "Softplus": "softplus"}


def operand(im: Any, name: str, other: Tensor | None = None) -> str:
    """A tensor's variable, or a scalar constant as a number when the other operand is a tensor of its
    dtype (so `x * 0.5` stays a scalar op, not a parameter)."""
    c = im.const(name)
    if c is not None and c.size == 1 and c.ndim <= (other.rank if other and other.shape is not None else 0) \
            and other is not None and c.dtype.kind in "fiub":
        value = c.reshape(()).item()
        if other.dtype in ("f32", "f64"):
            return literal(float(value))
        if other.dtype in ("i32", "i64") and c.dtype.kind in "iu":
            return literal(int(value))
    return im.tensor(name).name


def legacy_broadcast(im: Any, node: Node, a_name: str, b_name: str) -> str:
    """Opsets before 7 broadcast B only when `broadcast=1`, aligned at `axis` of A: B gets trailing size-1
    axes so that NumPy broadcasting lines it up the same way. Returns the (possibly new) name of B."""
    node.only("broadcast", "axis")
    axis = node.attr("axis")
    if not node.attr("broadcast", 0) or axis is None:
        return b_name
    a, b = im.get(a_name), im.get(b_name)
    rank_a = a.ndim if isinstance(a, np.ndarray) else im.tensor(a_name).rank
    rank_b = b.ndim if isinstance(b, np.ndarray) else im.tensor(b_name).rank
    extra = rank_a - (axis % rank_a) - rank_b
    if extra <= 0:
        return b_name
    if not isinstance(b, np.ndarray):
        raise Unsupported("legacy broadcast with axis of a computed tensor")
    aligned = f"{b_name}__aligned"
    im.set(aligned, b.reshape(b.shape + (1,) * extra))
    return aligned


@converts(*_INFIX)
def binary(im: Any, node: Node) -> None:
    a_name, b_name = node.inputs[:2]
    if node.opset < 7:
        b_name = legacy_broadcast(im, node, a_name, b_name)
    else:
        node.only()
    a_c, b_c = im.const(a_name), im.const(b_name)
    ta = None if a_c is not None else im.tensor(a_name)
    tb = None if b_c is not None else im.tensor(b_name)
    if ta is None and tb is None:  # unreachable: folded
        raise Unsupported("both operands are constant")
    ref = ta or tb
    if ref.dtype not in ("f32", "f64") and node.op in ("Div", "Pow"):
        _integer(im, node, a_name, b_name)
        return
    if node.op == "Pow" and ta is not None and b_c is not None and b_c.size == 1 and b_c.ndim <= ta.rank \
            and ta.dtype in ("f32", "f64"):
        power = {1.0: "{x}", 2.0: "square({x})", 3.0: "{x} * {x} * {x}", 0.5: "sqrt({x})",
                 -1.0: "reciprocal({x})"}.get(float(b_c.reshape(())))
        if power is not None:  # exact small powers as products: far faster than pow (GPT-2's tanh GELU)
            im.emit(node.outputs[0], power.format(x=ta.name))
            return
    a = operand(im, a_name, tb) if ta is None else ta.name
    b = operand(im, b_name, ta) if tb is None else tb.name
    if node.op == "Pow" and ta is not None and tb is not None and ta.dtype != tb.dtype:
        b = f"cast({b}, \"{ta.dtype}\")"  # ONNX's exponent may have another type; the result has the base's
    if ta is None and not _is_name(a) and node.op in ("Sub", "Div", "Pow"):
        # A number on the left: dlc writes `c - x` and `c / x` itself; `c ** x` needs a tensor.
        if node.op == "Pow":
            a = im.tensor(a_name).name
    im.emit(node.outputs[0], f"{a} {_INFIX[node.op]} {b}")


def _integer(im: Any, node: Node, a_name: str, b_name: str) -> None:
    """Div and Pow of integers, computed in f64 (exact below 2^53) and cast back to the first operand's type:
    the cast truncates toward zero, as ONNX's integer Div does."""
    a, b = im.tensor(a_name), im.tensor(b_name)
    if a.dtype not in ("i32", "i64") or b.dtype == "bool":
        raise Unsupported(f"{node.op} of {a.dtype} by {b.dtype}")
    im.emit(node.outputs[0], f"cast(cast({a.name}, \"f64\") {_INFIX[node.op]} cast({b.name}, \"f64\"), "
                             f"\"{a.dtype}\")")


def _is_name(text: str) -> bool:
    return text[:1].isalpha() or text[:1] == "_"


@converts(*_UNARY)
def unary(im: Any, node: Node) -> None:
    node.only()
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64") and node.op not in ("Neg", "Abs", "Relu", "Sign"):
        raise Unsupported(f"{node.op} on {x.dtype} tensors is not supported")
    if x.dtype not in ("f32", "f64") and node.op in ("Relu", "Sign", "Abs", "Neg"):
        raise Unsupported(f"{node.op} on {x.dtype} tensors is not supported (dlc's is floating point)")
    im.emit(node.outputs[0], f"{_UNARY[node.op]}({x.name})")


def _float(im: Any, node: Node) -> str:
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"{node.op} on {x.dtype} tensors is not supported")
    return x.name


@converts("LeakyRelu")
def leaky_relu(im: Any, node: Node) -> None:
    node.only("alpha")
    im.emit(node.outputs[0], f"leaky_relu({_float(im, node)}, alpha={literal(node.attr('alpha', 0.01))})")


def _neg_part_exp(im: Any, x: str, scale: float = 1.0) -> str:
    """exp(min(x, 0) / scale) - 1, written with relu: the negative branch of ELU-like activations."""
    inner = f"-relu(-{x})" if scale == 1.0 else f"-relu(-{x}) * {literal(1.0 / scale)}"
    return im.temp(f"exp({inner}) - 1.0", "neg_part")


@converts("Elu")
def elu(im: Any, node: Node) -> None:
    node.only("alpha")
    x = _float(im, node)
    neg = _neg_part_exp(im, x)
    im.emit(node.outputs[0], f"relu({x}) + {neg} * {literal(float(node.attr('alpha', 1.0)))}")


@converts("Selu")
def selu(im: Any, node: Node) -> None:
    node.only("alpha", "gamma")
    x = _float(im, node)
    alpha, gamma = float(node.attr("alpha", 1.67326319217681884765625)), float(node.attr("gamma",
                                                                                          1.05070102214813232421875))
    neg = _neg_part_exp(im, x)
    im.emit(node.outputs[0], f"(relu({x}) + {neg} * {literal(alpha)}) * {literal(gamma)}")


@converts("Celu")
def celu(im: Any, node: Node) -> None:
    node.only("alpha")
    x = _float(im, node)
    alpha = float(node.attr("alpha", 1.0))
    neg = _neg_part_exp(im, x, alpha)
    im.emit(node.outputs[0], f"relu({x}) + {neg} * {literal(alpha)}")


def _hard_sigmoid(im: Any, x: str, alpha: float, beta: float) -> str:
    """max(0, min(1, alpha x + beta)) = relu(1 - relu(1 - (alpha x + beta)))."""
    lin = im.temp(f"{x} * {literal(alpha)} + {literal(beta)}", "lin")
    return f"relu(1.0 - relu(1.0 - {lin}))"


@converts("HardSigmoid")
def hard_sigmoid(im: Any, node: Node) -> None:
    node.only("alpha", "beta")
    x = _float(im, node)
    im.emit(node.outputs[0], _hard_sigmoid(im, x, float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))))


@converts("HardSwish")
def hard_swish(im: Any, node: Node) -> None:
    node.only()
    x = _float(im, node)
    gate = im.temp(_hard_sigmoid(im, x, 1.0 / 6.0, 0.5), "gate")
    im.emit(node.outputs[0], f"{x} * {gate}")


@converts("Softsign")
def softsign(im: Any, node: Node) -> None:
    node.only()
    x = _float(im, node)
    im.emit(node.outputs[0], f"{x} / (abs({x}) + 1.0)")


@converts("Mish")
def mish(im: Any, node: Node) -> None:
    node.only()
    x = _float(im, node)
    im.emit(node.outputs[0], f"{x} * tanh(softplus({x}))")


@converts("ThresholdedRelu")
def thresholded_relu(im: Any, node: Node) -> None:
    node.only("alpha")
    x = im.tensor(node.inputs[0])
    im.emit(node.outputs[0], f"{x.name} * cast({x.name} > {literal(float(node.attr('alpha', 1.0)))}, "
                             f"\"{x.dtype}\")")


@converts("Gelu")
def gelu(im: Any, node: Node) -> None:
    node.only("approximate")
    im.emit(node.outputs[0], f"gelu({_float(im, node)}, approximate={literal(node.attr('approximate', 'none'))})")


@converts("PRelu")
def prelu(im: Any, node: Node) -> None:
    node.only()
    x = _float(im, node)
    slope_name = node.inputs[1]
    c = im.const(slope_name)
    xt = im.tensor(node.inputs[0])
    if node.opset < 7 and c is not None and c.ndim == 1 and c.size > 1 and xt.rank > 2:
        slope_name = f"{slope_name}__channels"  # before opset 7 a vector slope is per channel (axis 1)
        im.set(slope_name, c.reshape((-1,) + (1,) * (xt.rank - 2)))
    slope = operand(im, slope_name, xt)
    im.emit(node.outputs[0], f"relu({x}) - relu(-{x}) * {slope}")


@converts("Clip")
def clip(im: Any, node: Node) -> None:
    x = im.tensor(node.inputs[0])
    if node.opset < 11:
        node.only("min", "max")
        lo, hi = node.attr("min"), node.attr("max")
    else:
        node.only()
        bounds = []
        for k in (1, 2):
            name = node.inputs[k] if len(node.inputs) > k else ""
            c = im.need_const(name, "Clip's bound") if name else None
            bounds.append(None if c is None else c.reshape(()).item())
        lo, hi = bounds
    # maximum with a tensor of the bound (x * 0 + lo) keeps values inside the range exact.
    cur = x.name
    zero = "0.0" if x.dtype in ("f32", "f64") else "0"
    fmt = (lambda v: literal(float(v))) if x.dtype in ("f32", "f64") else (lambda v: literal(int(v)))
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"Clip on {x.dtype} tensors is not supported")
    if lo is not None:
        cur = im.temp(f"maximum({cur}, {cur} * {zero} + {fmt(lo)})", "clipped")
    if hi is not None:
        cur = im.temp(f"minimum({cur}, {cur} * {zero} + {fmt(hi)})", "clipped")
    im.emit(node.outputs[0], cur)


@converts("Sum", "Max", "Min", "Mean")
def variadic(im: Any, node: Node) -> None:
    node.only()
    names = [im.tensor(n).name for n in node.inputs]
    fn = {"Sum": "add", "Mean": "add", "Max": "maximum", "Min": "minimum"}[node.op]
    cur = names[0]
    for other in names[1:]:
        cur = f"{fn}({cur}, {other})"
    if node.op == "Mean" and len(names) > 1:
        cur = f"{cur} * {literal(1.0 / len(names))}"
    im.emit(node.outputs[0], cur)


@converts("Where")
def where(im: Any, node: Node) -> None:
    node.only()
    c, a, b = (im.tensor(n).name for n in node.inputs)
    im.emit(node.outputs[0], f"where({c}, {a}, {b})")


@converts("Identity")
def identity(im: Any, node: Node) -> None:
    node.only()
    im.set(node.outputs[0], im.get(node.inputs[0]))


@converts("Cast")
def cast(im: Any, node: Node) -> None:
    from .values import ONNX_DTYPES
    node.only("to", "saturate")
    to = ONNX_DTYPES.get(int(node.attr("to")))
    if to is None:
        raise Unsupported(f"cast to ONNX type {node.attr('to')} (dlc has f32, f64, i32, i64, bool)")
    x = im.tensor(node.inputs[0])
    if x.dtype == to:
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], f"cast({x.name}, \"{to}\")")


@converts("Not", "And", "Or", "Xor")
def logical(im: Any, node: Node) -> None:
    """Boolean logic from where/eq/ne: not x = (x == (x != x)), a and b = where(a, b, a), a or b =
    where(a, a, b), a xor b = a != b."""
    node.only()
    from .symbolic import Iota
    filled = [k for k, n in enumerate(node.inputs) if isinstance(im.get(n), Iota) and not im.get(n).terms]
    if node.op in ("And", "Or") and filled:  # one side holds everywhere or nowhere (mask functions)
        value = bool(im.get(node.inputs[filled[0]]).start)
        other = im.tensor(node.inputs[1 - filled[0]])
        keep_other = value if node.op == "And" else not value
        from .iota import broadcast_shape
        shape = broadcast_shape(im.get(node.inputs[filled[0]]).shape, tuple(other.shape))
        dims = ", ".join(im.dim_text(d) for d in shape)
        if not keep_other:
            im.emit(node.outputs[0], f"full([{dims}], value={int(value)}, dtype=\"bool\")")
        else:
            same = shape == tuple(other.shape)
            im.emit(node.outputs[0], other.name if same else f"broadcast_to({other.name}, [{dims}])")
        return
    a = im.tensor(node.inputs[0])
    if a.dtype != "bool":
        raise Unsupported(f"{node.op} of a {a.dtype} tensor")
    if node.op == "Not":
        im.emit(node.outputs[0], f"{a.name} == ({a.name} != {a.name})")
        return
    bt = im.tensor(node.inputs[1])
    an, b = a.name, bt.name
    if node.op != "Xor" and tuple(a.shape) != tuple(bt.shape):  # where() picks elements: same shapes first
        from .iota import broadcast_shape
        shape = broadcast_shape(tuple(a.shape), tuple(bt.shape))
        dims = ", ".join(im.dim_text(d) for d in shape)
        an = an if tuple(a.shape) == shape else im.temp(f"broadcast_to({an}, [{dims}])", "wide")
        b = b if tuple(bt.shape) == shape else im.temp(f"broadcast_to({b}, [{dims}])", "wide")
    expr = {"And": f"where({an}, {b}, {an})", "Or": f"where({an}, {an}, {b})", "Xor": f"{an} != {b}"}[node.op]
    im.emit(node.outputs[0], expr)


@converts("CastLike")
def cast_like(im: Any, node: Node) -> None:
    node.only("saturate")
    target = im.get(node.inputs[1])
    from .values import dlc_dtype
    to = dlc_dtype(target.dtype) if isinstance(target, np.ndarray) else im.tensor(node.inputs[1]).dtype
    x = im.tensor(node.inputs[0])
    if x.dtype == to:
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], f"cast({x.name}, \"{to}\")")


@converts("IsNaN")
def is_nan(im: Any, node: Node) -> None:
    """NaN is the one value unequal to itself (attention code masks NaN rows of a softmax with it)."""
    node.only()
    x = _float(im, node)
    im.emit(node.outputs[0], f"{x} != {x}")
