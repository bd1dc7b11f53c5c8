"""Elementwise and broadcast ops: arithmetic, comparisons, activations, casts.

All of them run on the C++ tile evaluator (kernel "ew"): each `emit` appends evaluator instructions, so the
same definition serves a standalone kernel and a fused group. Gradients are written with other ops here and
reduce broadcast operands back with `sum_to`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import ShapeError
from ..ir import FLOAT_DTYPES, TensorType
from .common import (binary_samples, broadcast_all, dtype_np, erf_np, need_float, rand, rand_away, same_dtype, sum_to,
                     unary_samples)
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def simple(opcode: str, imm_attr: str | None = None) -> Callable[..., int]:
    def emit(pb: Any, node: Any, args: list[int]) -> int:
        imm = node.attr(imm_attr) if imm_attr else 0.0
        return pb.instr(opcode, *args, imm=imm)
    return emit


def float_unary_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    need_float("", types[0])
    return [types[0]]


def arith_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    dtype = same_dtype("", types)
    if dtype == "bool":
        raise ShapeError("arithmetic on bool tensors; cast them first")
    return [TensorType(dtype, broadcast_all(types))]


def compare_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    same_dtype("", types)
    return [TensorType("bool", broadcast_all(types))]


# ---- unary float ops: (name, opcode, numpy reference, gradient from (b, x, y, g, node), sample generator) ----

def _pos(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rand(rng, shape, dtype, 0.5, 2.0)


def _wide(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rand(rng, shape, dtype, -3.0, 3.0)


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def _gelu_np(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    xd = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    else:
        y = 0.5 * xd * (1 + erf_np(xd / math.sqrt(2)))
    return y.astype(x.dtype)


def _m(b: Any, x: int, y: int) -> int:
    return b.op1("mul", x, y)


UNARY: list[tuple[str, str, Callable[..., Any], Callable[..., int] | None, Callable[..., Any], str]] = [
    ("neg", "NEG", lambda x: -x, lambda b, x, y, g, n: b.op1("neg", g), rand, "-x"),
    ("exp", "EXP", np.exp, lambda b, x, y, g, n: _m(b, g, y), rand, "e to the x"),
    ("log", "LOG", np.log, lambda b, x, y, g, n: b.op1("div", g, x), _pos, "natural logarithm"),
    ("sqrt", "SQRT", np.sqrt,
     lambda b, x, y, g, n: b.op1("div", g, b.op1("mul_scalar", y, value=2.0)), _pos, "square root"),
    ("rsqrt", "RSQRT", lambda x: 1 / np.sqrt(x),
     lambda b, x, y, g, n: _m(b, g, b.op1("mul_scalar", b.op1("pow_scalar", y, value=3.0), value=-0.5)),
     _pos, "1 / sqrt(x)"),
    ("abs", "ABS", np.abs, lambda b, x, y, g, n: _m(b, g, b.op1("sign", x)), rand_away, "absolute value"),
    ("square", "SQUARE", np.square,
     lambda b, x, y, g, n: _m(b, g, b.op1("mul_scalar", x, value=2.0)), rand, "x * x"),
    ("reciprocal", "RECIP", lambda x: 1 / x,
     lambda b, x, y, g, n: b.op1("neg", _m(b, g, b.op1("square", y))), _pos, "1 / x"),
    ("relu", "RELU", lambda x: np.maximum(x, 0),
     lambda b, x, y, g, n: _m(b, g, b.op1("relu_mask", y)), rand_away, "max(x, 0)"),
    ("sigmoid", "SIGMOID", _sigmoid_np,
     lambda b, x, y, g, n: _m(b, g, _m(b, y, b.op1("add_scalar", b.op1("neg", y), value=1.0))), _wide,
     "logistic function 1 / (1 + e^-x)"),
    ("tanh", "TANH", np.tanh,
     lambda b, x, y, g, n: _m(b, g, b.op1("add_scalar", b.op1("neg", b.op1("square", y)), value=1.0)), _wide,
     "hyperbolic tangent"),
    ("softplus", "SOFTPLUS", lambda x: np.logaddexp(0, x).astype(x.dtype),
     lambda b, x, y, g, n: _m(b, g, b.op1("sigmoid", x)), _wide, "log(1 + e^x), computed without overflow"),
    ("erf", "ERF", erf_np,
     lambda b, x, y, g, n: _m(b, g, b.op1("mul_scalar", b.op1("exp", b.op1("neg", b.op1("square", x))),
                                          value=2 / math.sqrt(math.pi))), _wide, "error function"),
]

for _name, _opcode, _ref, _grad, _gen, _doc in UNARY:
    def _make_grad(rule: Callable[..., int]) -> Callable[..., list[int | None]]:
        return lambda b, node, gs: [rule(b, node.inputs[0], node.outputs[0], gs[0], node)]
    register(OpDef(_name, ("x",), infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
                   emit=simple(_opcode), grad=_make_grad(_grad), reference=_ref,
                   samples=unary_samples(_gen), doc=_doc))

# ---- internal helpers used by gradient rules (and visible in IR dumps) ----

register(OpDef("sign", ("x",), infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("SIGN"), differentiable=False, reference=np.sign, samples=unary_samples(rand_away),
               doc="-1, 0 or 1"))
register(OpDef("relu_mask", ("x",), infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("STEP"), differentiable=False, user=False,
               reference=lambda x: (x > 0).astype(x.dtype), samples=unary_samples(rand_away),
               doc="1 where x > 0 else 0 (the ReLU derivative)"))
register(OpDef("leaky_relu", ("x",), (AttrSpec("alpha", "float", 0.01),), infer=float_unary_infer,
               pattern=Pattern.ELEMENTWISE, kernel="ew", emit=simple("LEAKY_RELU", "alpha"),
               grad=lambda b, n, gs: [b.op1("mul", gs[0], b.op1("leaky_relu_mask", n.inputs[0],
                                                                 alpha=n.attr("alpha")))],
               reference=lambda x, alpha=0.01: np.where(x > 0, x, alpha * x).astype(x.dtype),
               samples=unary_samples(rand_away, {"alpha": 0.1}), doc="x if x > 0 else alpha * x"))
register(OpDef("leaky_relu_mask", ("x",), (AttrSpec("alpha", "float", 0.01),), infer=float_unary_infer,
               pattern=Pattern.ELEMENTWISE, kernel="ew", emit=simple("LEAKY_STEP", "alpha"), differentiable=False,
               user=False, reference=lambda x, alpha=0.01: np.where(x > 0, 1.0, alpha).astype(x.dtype),
               samples=unary_samples(rand_away, {"alpha": 0.1})))


def _gelu_emit(pb: Any, node: Any, args: list[int]) -> int:
    return pb.instr("GELU_TANH" if node.attr("approximate") == "tanh" else "GELU_ERF", *args)


def _gelu_grad_emit(pb: Any, node: Any, args: list[int]) -> int:
    return pb.instr("GELU_TANH_GRAD" if node.attr("approximate") == "tanh" else "GELU_ERF_GRAD", *args)


def _gelu_grad_np(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    xd = x.astype(np.float64)
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        t = np.tanh(k * (xd + 0.044715 * xd ** 3))
        d = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * k * (1 + 3 * 0.044715 * xd * xd)
    else:
        d = 0.5 * (1 + erf_np(xd / math.sqrt(2))) + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
    return d.astype(x.dtype)


_APPROX = AttrSpec("approximate", "str", "none", ("none", "tanh"), "'none' (exact, erf) or 'tanh'")
register(OpDef("gelu", ("x",), (_APPROX,), infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=_gelu_emit,
               grad=lambda b, n, gs: [b.op1("mul", gs[0], b.op1("gelu_grad", n.inputs[0],
                                                                 approximate=n.attr("approximate")))],
               reference=_gelu_np, samples=lambda rng, dt: [
                   Sample([_wide(rng, (4, 6), dt)], {"approximate": a}) for a in ("none", "tanh")],
               doc="Gaussian error linear unit, exact (erf) or tanh approximation"))
register(OpDef("gelu_grad", ("x",), (_APPROX,), infer=float_unary_infer, pattern=Pattern.ELEMENTWISE,
               kernel="ew", emit=_gelu_grad_emit, differentiable=False, user=False, reference=_gelu_grad_np,
               samples=lambda rng, dt: [Sample([_wide(rng, (4, 6), dt)], {"approximate": a})
                                        for a in ("none", "tanh")]))

# ---- scalar-immediate ops: what `x * 2`, `x + 1`, `x ** 3` become ----

_VALUE = (AttrSpec("value", "float"),)
register(OpDef("add_scalar", ("x",), _VALUE, infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("ADD_SCALAR", "value"), grad=lambda b, n, gs: [gs[0]],
               reference=lambda x, value: (x + value).astype(x.dtype),
               samples=unary_samples(rand, {"value": 1.5}), doc="x + value"))
register(OpDef("mul_scalar", ("x",), _VALUE, infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("MUL_SCALAR", "value"),
               grad=lambda b, n, gs: [b.op1("mul_scalar", gs[0], value=n.attr("value"))],
               reference=lambda x, value: (x * value).astype(x.dtype),
               samples=unary_samples(rand, {"value": -2.5}), doc="x * value"))
register(OpDef("pow_scalar", ("x",), _VALUE, infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("POW_SCALAR", "value"),
               grad=lambda b, n, gs: [b.op1("mul", gs[0], b.op1("mul_scalar", b.op1(
                   "pow_scalar", n.inputs[0], value=n.attr("value") - 1), value=n.attr("value")))],
               reference=lambda x, value: np.power(x, value).astype(x.dtype),
               samples=unary_samples(_pos, {"value": 3.0}), doc="x ** value"))
register(OpDef("clip_abs", ("x",), _VALUE, infer=float_unary_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=simple("CLAMP_ABS", "value"), differentiable=False, user=False,
               reference=lambda x, value: np.clip(x, -value, value), samples=unary_samples(rand, {"value": 0.5})))

# ---- binary ops ----


def _binary_grad(rule: Callable[..., tuple[int | None, int | None]]) -> Callable[..., list[int | None]]:
    def grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
        a, c = node.inputs
        ga, gc = rule(b, a, c, node.outputs[0], gs[0])
        return [None if ga is None else sum_to(b, ga, b.type_of(a).shape),
                None if gc is None else sum_to(b, gc, b.type_of(c).shape)]
    return grad


def _div_grad(b: Any, a: int, c: int, y: int, g: int) -> tuple[int, int]:
    return b.op1("div", g, c), b.op1("neg", b.op1("div", b.op1("mul", g, y), c))


def _pow_grad(b: Any, a: int, c: int, y: int, g: int) -> tuple[int, int]:
    ga = b.op1("mul", g, b.op1("mul", c, b.op1("pow", a, b.op1("add_scalar", c, value=-1.0))))
    return ga, b.op1("mul", g, b.op1("mul", y, b.op1("log", a)))


def _minmax_grad(cmp: str) -> Callable[..., tuple[int, int]]:
    def rule(b: Any, a: int, c: int, y: int, g: int) -> tuple[int, int]:
        take_a = b.op1(cmp, a, c)
        zero = b.scalar(0.0, b.type_of(g).dtype)
        return b.op1("where", take_a, g, zero), b.op1("where", take_a, zero, g)
    return rule


def _distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (rng.permutation(max(int(np.prod(shape)), 1))[:int(np.prod(shape))].reshape(shape) * 0.37 - 1
            ).astype(dtype_np(dtype))


def _distinct_shifted(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Never equal to a _distinct value: ties would sit on the kink of min/max."""
    return (_distinct(rng, shape, "f64") + 0.1).astype(dtype_np(dtype))


BINARY = [
    ("add", "ADD", np.add, lambda b, a, c, y, g: (g, g), rand, "a + b"),
    ("sub", "SUB", np.subtract, lambda b, a, c, y, g: (g, b.op1("neg", g)), rand, "a - b"),
    ("mul", "MUL", np.multiply, lambda b, a, c, y, g: (b.op1("mul", g, c), b.op1("mul", g, a)), rand, "a * b"),
    ("div", "DIV", np.divide, _div_grad, _pos, "a / b"),
    ("pow", "POW", np.power, _pow_grad, _pos, "a ** b"),
    ("minimum", "MIN", np.minimum, _minmax_grad("le"), _distinct, "elementwise minimum"),
    ("maximum", "MAX", np.maximum, _minmax_grad("ge"), _distinct, "elementwise maximum"),
]
for _name, _opcode, _ref, _rule, _gen, _doc in BINARY:
    register(OpDef(_name, ("a", "b"), infer=arith_infer, pattern=Pattern.BROADCAST, kernel="ew",
                   emit=simple(_opcode), grad=_binary_grad(_rule),
                   reference=(lambda f: lambda a, b: f(a, b).astype(np.result_type(a, b)))(_ref),
                   samples=binary_samples(_gen, _distinct_shifted if _gen is _distinct else None), doc=_doc))

COMPARE = [("eq", "EQ", np.equal, "=="), ("ne", "NE", np.not_equal, "!="), ("lt", "LT", np.less, "<"),
           ("le", "LE", np.less_equal, "<="), ("gt", "GT", np.greater, ">"), ("ge", "GE", np.greater_equal, ">=")]
for _name, _opcode, _ref, _sym in COMPARE:
    register(OpDef(_name, ("a", "b"), infer=compare_infer, pattern=Pattern.BROADCAST, kernel="ew",
                   emit=simple(_opcode), differentiable=False, reference=_ref,
                   samples=binary_samples(lambda rng, s, dt: rng.integers(0, 3, size=s).astype(dtype_np(dt))),
                   doc=f"a {_sym} b, as a bool tensor"))


def _where_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    if types[0].dtype != "bool":
        raise ShapeError(f"the condition must be a bool tensor, got {types[0]}")
    dtype = same_dtype("", types[1:])
    return [TensorType(dtype, broadcast_all(types))]


def _where_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    cond, a, c = node.inputs
    zero = b.scalar(0.0, b.type_of(gs[0]).dtype)
    ga = b.op1("where", cond, gs[0], zero)
    gc = b.op1("where", cond, zero, gs[0])
    return [None, sum_to(b, ga, b.type_of(a).shape), sum_to(b, gc, b.type_of(c).shape)]


register(OpDef("where", ("cond", "a", "b"), infer=_where_infer, pattern=Pattern.BROADCAST, kernel="ew",
               emit=simple("WHERE"), grad=_where_grad, reference=np.where,
               samples=lambda rng, dt: [Sample([rng.random((3, 4)) < 0.5, rand(rng, (3, 4), dt),
                                               rand(rng, (4,), dt)])],
               doc="a where cond is true, else b"))

# ---- dtype and broadcast plumbing ----


def _cast_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(attrs["dtype"], types[0].shape)]


def _cast_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    src = b.type_of(node.inputs[0]).dtype
    return [b.op1("cast", gs[0], dtype=src)] if src in FLOAT_DTYPES else [None]


register(OpDef("cast", ("x",), (AttrSpec("dtype", "dtype"),), infer=_cast_infer, pattern=Pattern.ELEMENTWISE,
               kernel="ew", emit=simple("COPY"), grad=_cast_grad,
               reference=lambda x, dtype: x.astype(dtype_np(dtype)),
               samples=lambda rng, dt: [Sample([rand(rng, (3, 4), dt, -5, 5)], {"dtype": t}, grad=t == dt)
                                        for t in ("f32", "f64", "i32")],
               doc="convert to another dtype (float to int truncates toward zero)"))


def _broadcast_to_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    from ..dims import broadcast_shapes
    target = tuple(attrs["shape"])
    if broadcast_shapes(types[0].shape, target) != target:
        raise ShapeError(f"cannot broadcast {types[0]} to {list(target)}")
    return [TensorType(types[0].dtype, target)]


register(OpDef("broadcast_to", ("x",), (AttrSpec("shape", "shape"),), infer=_broadcast_to_infer,
               pattern=Pattern.BROADCAST, kernel="ew", emit=simple("COPY"),
               grad=lambda b, n, gs: [sum_to(b, gs[0], b.type_of(n.inputs[0]).shape)],
               reference=lambda x, shape: np.broadcast_to(x, shape).copy(),
               samples=lambda rng, dt: [Sample([rand(rng, (3, 1), dt)], {"shape": (2, 3, 4)})],
               doc="repeat x along its size-1 dimensions (NumPy broadcasting) to `shape`"))


# Blocks gradients: the value passes unchanged, its gradient is zero. The simplifier removes the node once
# autodiff has seen it, so it costs nothing at run time (a GAN's fixed targets, a DQN's bootstrapped target).
register(OpDef("stop_gradient", ("x",), infer=lambda types, attrs: [types[0]], pattern=Pattern.ELEMENTWISE,
               kernel="ew", emit=simple("COPY"), differentiable=False, reference=lambda x: x.copy(),
               samples=unary_samples(rand), doc="x unchanged; no gradient flows back through it"))
