"""Reductions (sum, mean, max, min over axes) and softmax / log_softmax along an axis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import concrete, dims_product
from ..ir import TensorType
from .common import dtype_np, need_float, norm_axes, norm_axis, rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register

REDUCE_KIND = {"sum": 0, "mean": 1, "max": 2, "min": 3}


def _axes(attrs: dict[str, Any], rank: int) -> tuple[int, ...]:
    axis = attrs["axis"]
    if axis is None:
        return tuple(range(rank))
    return norm_axes(axis if isinstance(axis, tuple) else (axis,), rank)


def _reduce_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    need_float("", x)
    axes = _axes(attrs, x.rank)
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [TensorType(x.dtype, shape)]


def _keep_shape(b: Any, node: Any) -> tuple[Any, ...]:
    x = b.type_of(node.inputs[0])
    axes = _axes(node.attr_dict, x.rank)
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape))


def _expand_back(b: Any, node: Any, v: int) -> int:
    """A reduced tensor broadcast back over the reduced axes."""
    x = b.type_of(node.inputs[0])
    kept = b.op1("reshape", v, shape=_keep_shape(b, node))
    return b.op1("broadcast_to", kept, shape=x.shape)


def _sum_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    return [_expand_back(b, node, gs[0])]


def _mean_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x = b.type_of(node.inputs[0])
    count = concrete(dims_product(tuple(x.shape[a] for a in _axes(node.attr_dict, x.rank))), "mean gradient")
    return [b.op1("mul_scalar", _expand_back(b, node, gs[0]), value=1.0 / max(count, 1))]


def _extreme_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x = node.inputs[0]
    hit = b.op1("cast", b.op1("eq", x, _expand_back(b, node, node.outputs[0])), dtype=b.type_of(x).dtype)
    return [b.op1("mul", hit, _expand_back(b, node, gs[0]))]


def _reduce_lower(kind: int) -> Any:
    def lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
        axes = _axes(node.attr_dict, types[0].rank)
        return [kind, len(axes), *axes], []
    return lower


def _distinct(rng: np.random.Generator, shape: tuple[int, ...], dt: str) -> np.ndarray:
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.1 - 0.3).astype(dtype_np(dt))


def _reduce_samples(gen: Any) -> Any:
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        return [Sample([gen(rng, (3, 4), dt)], {"axis": 1}),
                Sample([gen(rng, (2, 3, 4), dt)], {"axis": (0, 2), "keepdims": True}),
                Sample([gen(rng, (2, 3, 4), dt)], {"axis": (1, 2)}),
                Sample([gen(rng, (5,), dt)], {})]
    return samples


def axes_tail(node: Any, space: tuple[Any, ...]) -> int | None:
    """How sum or mean over `node`'s axes reduces a fused group's space [..., D] (see OpDef.tail)."""
    rank = len(space)
    axis = node.attr("axis")
    axes = set(range(rank)) if axis is None else {a % rank for a in (axis if isinstance(axis, tuple) else (axis,))}
    if axes == set(range(rank)):
        return 0
    return 1 if axes == set(range(rank - 1)) else None


_REDUCE_ATTRS = (AttrSpec("axis", "any", None, doc="an axis, a list of axes, or none for all"),
                 AttrSpec("keepdims", "bool", False))
for _name, _np, _grad, _gen in [("sum", np.sum, _sum_grad, rand), ("mean", np.mean, _mean_grad, rand),
                                ("max", np.max, _extreme_grad, _distinct), ("min", np.min, _extreme_grad, _distinct)]:
    register(OpDef(_name, ("x",), _REDUCE_ATTRS, infer=_reduce_infer, pattern=Pattern.REDUCTION, kernel="reduce",
                   lower=_reduce_lower(REDUCE_KIND[_name]), grad=_grad,
                   reference=(lambda f: lambda x, axis=None, keepdims=False: np.asarray(
                       f(x, axis=axis, keepdims=keepdims)).astype(x.dtype))(_np),
                   samples=_reduce_samples(_gen), tail=axes_tail if _name in ("sum", "mean") else None,
                   doc=f"{_name} over axes"))


def _axis_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    need_float("", types[0])
    norm_axis(attrs["axis"], types[0].rank)
    return [types[0]]


def _axis_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    return [norm_axis(node.attr("axis"), types[0].rank)], []


def _softmax_np(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax_np(x: np.ndarray, axis: int = -1) -> np.ndarray:
    s = x - x.max(axis=axis, keepdims=True)
    return (s - np.log(np.exp(s).sum(axis=axis, keepdims=True))).astype(x.dtype)


def _softmax_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (4, 7), dt, -3, 3)], {"axis": -1}),
            Sample([rand(rng, (2, 5, 3), dt, -3, 3)], {"axis": 1})]


_AXIS = (AttrSpec("axis", "int", -1),)
register(OpDef("softmax", ("x",), _AXIS, infer=_axis_infer, pattern=Pattern.REDUCTION, kernel="softmax",
               lower=_axis_lower,
               grad=lambda b, n, gs: [b.op1("softmax_grad", n.outputs[0], gs[0], axis=n.attr("axis"))],
               reference=_softmax_np, samples=_softmax_samples, doc="exp(x) / sum(exp(x)) along axis, stable"))
register(OpDef("log_softmax", ("x",), _AXIS, infer=_axis_infer, pattern=Pattern.REDUCTION, kernel="log_softmax",
               lower=_axis_lower,
               grad=lambda b, n, gs: [b.op1("log_softmax_grad", n.outputs[0], gs[0], axis=n.attr("axis"))],
               reference=_log_softmax_np, samples=_softmax_samples, doc="log(softmax(x)) along axis, stable"))


def _softmax_grad_np(y: np.ndarray, gy: np.ndarray, axis: int = -1) -> np.ndarray:
    return (y * (gy - (gy * y).sum(axis=axis, keepdims=True))).astype(y.dtype)


def _log_softmax_grad_np(y: np.ndarray, gy: np.ndarray, axis: int = -1) -> np.ndarray:
    return (gy - np.exp(y) * gy.sum(axis=axis, keepdims=True)).astype(y.dtype)


def _pair_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (3, 5), dt), rand(rng, (3, 5), dt)], {"axis": -1}, grad=False)]


register(OpDef("softmax_grad", ("y", "gy"), _AXIS, infer=lambda t, a: [t[0]], pattern=Pattern.REDUCTION,
               kernel="softmax_grad", lower=_axis_lower, differentiable=False, user=False,
               reference=_softmax_grad_np, samples=_pair_samples))
register(OpDef("log_softmax_grad", ("y", "gy"), _AXIS, infer=lambda t, a: [t[0]], pattern=Pattern.REDUCTION,
               kernel="log_softmax_grad", lower=_axis_lower, differentiable=False, user=False,
               reference=_log_softmax_grad_np, samples=_pair_samples))
