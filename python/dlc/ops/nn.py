"""Layers that own parameters (dense, layer_norm) and dropout.

A layer is an `expand` rule: it asks its `LayerContext` for parameters by local name (the front end turns
that into a stable hierarchical name such as `block1.fc.weight`, applies sharing and initializer overrides)
and rewrites itself into primitive ops. The user names only the output width; input sizes are inferred.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..dims import concrete
from ..errors import ShapeError
from ..ir import TensorType
from .common import need_float, rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register


class LayerContext(Protocol):
    dtype: str  # the program's floating-point precision ("f64" promotes declared f32 tensors)

    def param(self, local: str, t: TensorType, init: Any, fans: tuple[int, int]) -> int: ...

    def state(self, local: str, t: TensorType, init: Any) -> int: ...

    def salt(self) -> int: ...


ACTIVATIONS = ("none", "relu", "sigmoid", "tanh", "gelu", "softplus", "leaky_relu")


def _dense_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    x = ins[0]
    xt = b.type_of(x)
    need_float("dense", xt)
    if xt.rank < 1:
        raise b.error("dense needs an input of rank >= 1")
    fan_in = concrete(xt.shape[-1], "dense input width")
    units = attrs["units"]
    if units < 1:
        raise b.error(f"dense: units must be positive, got {units}")
    w = ctx.param("weight", TensorType(xt.dtype, (fan_in, units)), attrs["init"], (fan_in, units))
    y = b.op1("matmul", x, w) if xt.rank >= 2 else b.op1(
        "reshape", b.op1("matmul", b.op1("reshape", x, shape=(1, fan_in)), w), shape=(units,))
    if attrs["bias"]:
        y = b.op1("add", y, ctx.param("bias", TensorType(xt.dtype, (units,)), attrs["bias_init"], (fan_in, units)))
    if attrs["activation"] != "none":
        y = b.op1(attrs["activation"], y)
    return (y,)


register(OpDef("dense", ("x",),
               (AttrSpec("units", "int", doc="output width"),
                AttrSpec("bias", "bool", True),
                AttrSpec("activation", "str", "none", ACTIVATIONS),
                AttrSpec("init", "any", "glorot_uniform", doc="weight initializer"),
                AttrSpec("bias_init", "any", "zeros")),
               expand=_dense_expand, layer=True, pattern=Pattern.OUT_ELEMENTWISE_FUSABLE,
               doc="x @ weight + bias over the last axis; weight [in, units] is created and its input width inferred"))


def _ln_core_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, g, bta = types
    need_float("", x)
    d = x.shape[-1]
    if g.shape != (d,) or bta.shape != (d,):
        from ..errors import ShapeError
        raise ShapeError(f"scale and shift must be [{d}], got {g} and {bta}")
    rows = TensorType(x.dtype, x.shape[:-1])
    return [x, rows, rows]


def _ln_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x, gamma, _ = node.inputs
    _, mean, rstd = node.outputs
    gx, gg, gb = b.op("layer_norm_grad", (x, gamma, mean, rstd, gs[0]))
    return [gx, gg, gb]


def _ln_np(x: np.ndarray, g: np.ndarray, bta: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, ...]:
    xd = x.astype(np.float64)
    mean = xd.mean(-1)
    rstd = 1 / np.sqrt(xd.var(-1) + eps)
    y = (xd - mean[..., None]) * rstd[..., None] * g + bta
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


def _ln_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, s, dt, -2, 2), rand(rng, s[-1:], dt, 0.5, 1.5), rand(rng, s[-1:], dt)])
            for s in [(4, 8), (2, 3, 5)]]


register(OpDef("layer_norm_core", ("x", "scale", "shift"), (AttrSpec("eps", "float", 1e-5),),
               infer=_ln_core_infer, pattern=Pattern.REDUCTION, kernel="layer_norm",
               lower=lambda n, t: ([], [n.attr("eps")]), grad=_ln_grad, user=False, reference=_ln_np,
               differentiable_outputs=(0,), row_fusion=(0, "layer_norm_fused"),
               samples=_ln_samples, doc="layer normalization over the last axis; outputs y, mean, 1/std"))


def _ln_grad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [types[0], types[1], types[1]]


register(OpDef("layer_norm_grad", ("x", "scale", "mean", "rstd", "gy"), infer=_ln_grad_infer,
               pattern=Pattern.REDUCTION, kernel="layer_norm_grad", lower=lambda n, t: ([], []),
               row_fusion=(4, "layer_norm_grad_fused"), differentiable=False, user=False))


def _ln_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    x = ins[0]
    xt = b.type_of(x)
    need_float("layer_norm", xt)
    if xt.rank == 0:
        raise ShapeError(f"layer_norm normalizes the last axis, and {xt} has none")
    d = concrete(xt.shape[-1], "layer_norm width")
    pt = TensorType(xt.dtype, (d,))
    if attrs["affine"]:
        g = ctx.param("weight", pt, "ones", (d, d))
        s = ctx.param("bias", pt, "zeros", (d, d))
    else:
        g = b.const(np.ones(d), xt.dtype)
        s = b.const(np.zeros(d), xt.dtype)
    return (b.op("layer_norm_core", (x, g, s), eps=attrs["eps"])[0],)


register(OpDef("layer_norm", ("x",), (AttrSpec("eps", "float", 1e-5), AttrSpec("affine", "bool", True)),
               expand=_ln_expand, layer=True, pattern=Pattern.REDUCTION,
               doc="normalizes the last axis to zero mean and unit variance, then scale (weight) and shift (bias)"))


def _dropout_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    need_float("", types[0])
    if not 0.0 <= attrs["rate"] < 1.0:
        from ..errors import ShapeError
        raise ShapeError(f"rate must be in [0, 1), got {attrs['rate']}")
    return [types[0]]


def _dropout_emit(pb: Any, node: Any, args: list[int]) -> int:
    mask = pb.instr("DROPOUT_MASK", 0, node.attr("salt"), 0, imm=1.0 - node.attr("rate"))
    return pb.instr("MUL", args[0], mask)


def _dropout_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    if not 0.0 <= attrs["rate"] < 1.0:
        from ..errors import ShapeError
        raise ShapeError(f"rate must be in [0, 1), got {attrs['rate']}")
    if attrs["rate"] == 0.0:  # no mask kernel at all, so blocks can take a rate that defaults to 0
        return (ins[0],)
    return b.op("dropout_mask_mul", ins, rate=attrs["rate"], salt=ctx.salt())


register(OpDef("dropout", ("x",), (AttrSpec("rate", "float", 0.5, doc="probability of zeroing an element"),),
               expand=_dropout_expand, layer=True, pattern=Pattern.ELEMENTWISE,
               doc="in training, zeroes elements with probability rate and scales the rest by 1/(1-rate); "
                   "identity in evaluation. Masks are seeded: same seed and step, same mask"))
# The mask of element i depends on (seed, step, salt, i) only, so the gradient recomputes it instead of storing it.
register(OpDef("dropout_mask_mul", ("x",), (AttrSpec("rate", "float"), AttrSpec("salt", "int")),
               infer=_dropout_infer, pattern=Pattern.ELEMENTWISE, kernel="ew", emit=_dropout_emit, random=True,
               grad=lambda b, n, gs: [b.op1("dropout_mask_mul", gs[0], rate=n.attr("rate"), salt=n.attr("salt"))],
               user=False))
