"""Batch normalization over axis 1 of [N, C, ...] (statistics over every other axis).

The `batch_norm` layer expands to the training form `batch_norm_train`, which normalizes with the batch
statistics and updates the running statistics in place (its kernel writes into inputs 3 and 4, declared by
`mutates`). The evaluation pass (passes/eval_mode.py) swaps it for `batch_norm_eval`, which normalizes with
the running statistics. Kernels: csrc/kernels/norm/batchnorm_cpu.cpp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import concrete, dims_product
from ..errors import ShapeError
from ..ir import TensorType
from .common import need_float, rand, same_dtype
from .nn import LayerContext
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def _channels(types: list[TensorType]) -> TensorType:
    """Checks x [N, C, ...] and the [C] vectors after it; returns the [C] type."""
    x = types[0]
    need_float("", x)
    same_dtype("", types)
    if x.rank < 2:
        raise ShapeError(f"the input needs a channel axis (rank >= 2, [N, C, ...]), got {x}")
    vec = TensorType(x.dtype, (x.shape[1],))
    for t in types[1:]:
        if t.shape != vec.shape:
            raise ShapeError(f"per-channel operands must be [{x.shape[1]}] for input {x}, got {t}")
    return vec


def _check_eps(attrs: dict[str, Any]) -> None:
    if attrs["eps"] <= 0:
        raise ShapeError(f"eps must be positive, got {attrs['eps']}")


def _train_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    vec = _channels(types)
    _check_eps(attrs)
    if not 0.0 <= attrs["momentum"] <= 1.0:
        raise ShapeError(f"momentum must be in [0, 1], got {attrs['momentum']}")
    x = types[0]
    count = dims_product((x.shape[0], *x.shape[2:]))
    if count == 1:
        raise ShapeError(f"training statistics need more than one value per channel, but {x} has one")
    return [x, vec, vec]


def _train_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    # The batch statistics are saved for this rule, not differentiated through (differentiable_outputs);
    # y does not depend on the running statistics, which only receive the in-place update.
    if gs[0] is None:
        return [None] * 5
    x, gamma = node.inputs[:2]
    _, mean, invstd = node.outputs
    gx, gg, gb = b.op("batch_norm_grad", (x, gamma, mean, invstd, gs[0]))
    return [gx, gg, gb, None, None]


def _stat_axes(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank))


def _bcast(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape((-1,) + (1,) * (rank - 2))


def batch_norm_train_np(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                        running_var: np.ndarray, momentum: float = 0.1, eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    """(y, batch mean, 1/sqrt(biased batch var + eps)); the running update is tested separately."""
    xd, axes = x.astype(np.float64), _stat_axes(x.ndim)
    mean, invstd = xd.mean(axes), 1 / np.sqrt(xd.var(axes) + eps)
    y = (xd - _bcast(mean, x.ndim)) * _bcast(invstd * gamma, x.ndim) + _bcast(beta, x.ndim)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batch_norm_eval_np(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                       running_var: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    scale = gamma / np.sqrt(running_var.astype(np.float64) + eps)
    y = (x - _bcast(running_mean, x.ndim)) * _bcast(scale, x.ndim) + _bcast(beta, x.ndim)
    return y.astype(x.dtype)


def batch_norm_grad_np(x: np.ndarray, gamma: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                       gy: np.ndarray) -> tuple[np.ndarray, ...]:
    axes, r = _stat_axes(x.ndim), x.ndim
    xhat = (x.astype(np.float64) - _bcast(mean, r)) * _bcast(invstd, r)
    gd = gy.astype(np.float64)
    gbeta, ggamma = gd.sum(axes), (gd * xhat).sum(axes)
    m = x.size // x.shape[1]
    gx = _bcast(gamma * invstd, r) * (gd - _bcast(gbeta / m, r) - xhat * _bcast(ggamma / m, r))
    return gx.astype(x.dtype), ggamma.astype(x.dtype), gbeta.astype(x.dtype)


def _bn_inputs(rng: np.random.Generator, shape: tuple[int, ...], dt: str) -> list[np.ndarray]:
    c = (shape[1],)
    return [rand(rng, shape, dt, -2, 2), rand(rng, c, dt, 0.5, 1.5), rand(rng, c, dt), rand(rng, c, dt, -0.2, 0.2),
            rand(rng, c, dt, 0.5, 1.5)]


_SHAPES = [(4, 3, 3, 3), (5, 2), (2, 3, 4)]


def _train_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample(_bn_inputs(rng, s, dt), {"momentum": 0.2}) for s in _SHAPES]


def _eval_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample(_bn_inputs(rng, s, dt), {"eps": 1e-3}) for s in _SHAPES]


def _grad_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    out = []
    for s in _SHAPES:
        x, gamma, beta, rm, rv = _bn_inputs(rng, s, dt)
        _, mean, invstd = batch_norm_train_np(x, gamma, beta, rm, rv)
        out.append(Sample([x, gamma, mean, invstd, rand(rng, s, dt)], grad=False))
    return out


_STATS = ("x", "weight", "bias", "running_mean", "running_var")

register(OpDef("batch_norm_train", _STATS, (AttrSpec("momentum", "float", 0.1), AttrSpec("eps", "float", 1e-5)),
               infer=_train_infer, pattern=Pattern.OPAQUE, kernel="batch_norm_train",
               lower=lambda n, t: ([], [n.attr("momentum"), n.attr("eps")]), grad=_train_grad, mutates=(3, 4),
               differentiable_outputs=(0,),
               reference=batch_norm_train_np, samples=_train_samples,
               doc="normalizes with the batch statistics -> (y, batch_mean, batch_invstd), and moves "
                   "running_mean/running_var toward them in place"))
register(OpDef("batch_norm_grad", ("x", "weight", "mean", "invstd", "gy"), infer=lambda t, a: [t[0], t[1], t[1]],
               pattern=Pattern.OPAQUE, kernel="batch_norm_grad", lower=lambda n, t: ([], []), differentiable=False,
               user=False, reference=batch_norm_grad_np, samples=_grad_samples))


def _eval_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    _channels(types)
    _check_eps(attrs)
    return [types[0]]


def _eval_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    # y = (x - mean) * s + beta with s = gamma * invstd, invstd = (var + eps)^-1/2, per channel:
    #   gx = g * s, ggamma = sum(g * xhat), gbeta = sum(g), gmean = -sum(gx), gvar = -ggamma * gamma * invstd^2 / 2.
    x, gamma, _, mean, var = node.inputs
    g = gs[0]
    xt = b.type_of(x)
    shape = (xt.shape[1],) + (1,) * (xt.rank - 2)
    invstd = b.op1("rsqrt", b.op1("add_scalar", var, value=node.attr("eps")))
    gx = b.op1("mul", g, b.op1("reshape", b.op1("mul", gamma, invstd), shape=shape))
    xhat = b.op1("mul", b.op1("sub", x, b.op1("reshape", mean, shape=shape)), b.op1("reshape", invstd, shape=shape))
    axes = _stat_axes(xt.rank)
    ggamma = b.op1("sum", b.op1("mul", g, xhat), axis=axes)
    gmean = b.op1("neg", b.op1("sum", gx, axis=axes))
    gvar = b.op1("mul", ggamma, b.op1("mul_scalar", b.op1("mul", gamma, b.op1("square", invstd)), value=-0.5))
    return [gx, ggamma, b.op1("sum", g, axis=axes), gmean, gvar]


register(OpDef("batch_norm_eval", _STATS, (AttrSpec("eps", "float", 1e-5),), infer=_eval_infer,
               pattern=Pattern.OPAQUE, kernel="batch_norm_eval", lower=lambda n, t: ([], [n.attr("eps")]),
               grad=_eval_grad, reference=batch_norm_eval_np, samples=_eval_samples,
               doc="normalizes with the running statistics (evaluation form of batch_norm_train)"))


def _bn_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    xt = b.type_of(ins[0])
    need_float("batch_norm", xt)
    if xt.rank < 2:
        raise ShapeError(f"the input needs a channel axis (rank >= 2, [N, C, ...]), got {xt}")
    c = concrete(xt.shape[1], "batch_norm channel count")
    vec = TensorType(xt.dtype, (c,))
    gamma = ctx.param("weight", vec, "ones", (c, c))
    beta = ctx.param("bias", vec, "zeros", (c, c))
    mean = ctx.state("running_mean", vec, "zeros")
    var = ctx.state("running_var", vec, "ones")
    return (b.op("batch_norm_train", (ins[0], gamma, beta, mean, var), momentum=attrs["momentum"],
                 eps=attrs["eps"])[0],)


register(OpDef("batch_norm", ("x",), (AttrSpec("momentum", "float", 0.1), AttrSpec("eps", "float", 1e-5)),
               expand=_bn_expand, layer=True, pattern=Pattern.OPAQUE,
               doc="batch normalization over axis 1: weight (scale) and bias [C], running_mean/running_var state; "
                   "batch statistics in training, running statistics in evaluation"))
