"""Tensors made from nothing but a shape: random draws (normal, uniform, bernoulli) and constant fills
(zeros, ones, full), plus stop_gradient.

A random tensor is a pure function of (seed, step, salt, element), the counter-based stream dropout uses
(csrc/kernels/elementwise/elementwise.h): the same seed and training step give the same numbers for any
thread count, a resumed run draws what the uninterrupted one drew, and every call site gets its own salt, so
two `normal(...)` calls never share a stream. Outside training the step is the program's step counter, so a
generator sampled twice between training steps gives the same samples.

The shape is a list (`normal([N, 16])`, symbolic dimensions allowed) or the shape of another tensor
(`normal(like=mu)`), which is only read for its type: no gradient flows into it. Each op lowers to evaluator
instructions without inputs, so the draw fuses into the kernel that uses it and is never stored (the
reparameterization `mu + std * normal(like=mu)` is one kernel, and autodiff reaches `mu` and `std` through
the ordinary add and mul).
"""

from __future__ import annotations

from typing import Any

from ..dims import Sym
from ..errors import ShapeError
from ..ir import FLOAT_DTYPES, TensorType
from .registry import AttrSpec, OpDef, Pattern, register

SHAPE = AttrSpec("shape", "any", None, doc="a list of dimensions; or give like=")
LIKE = AttrSpec("like", "tensor", None, doc="a tensor whose shape (and dtype) to use")
DTYPE = AttrSpec("dtype", "dtype", None, doc="default: like's dtype, else the program's float type")


def _check_shape(shape: Any) -> tuple[Any, ...]:
    if not isinstance(shape, (list, tuple)):
        raise ShapeError(f"shape must be a list of dimensions, got {shape!r}")
    for d in shape:
        if isinstance(d, bool) or not (isinstance(d, Sym) or isinstance(d, int) and d >= 1):
            raise ShapeError(f"shape must hold positive dimensions, got {list(shape)}")
    return tuple(shape)


def _made_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(attrs["dtype"], _check_shape(attrs["shape"]))]


def _float_made_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    if attrs["dtype"] not in FLOAT_DTYPES:
        raise ShapeError(f"random tensors are floating point (f32 or f64), got {attrs['dtype']}")
    return _made_infer(types, attrs)


def _target(b: Any, ctx: Any, attrs: dict[str, Any], float_only: bool) -> tuple[tuple[Any, ...], str]:
    """The (shape, dtype) a creation call asks for, from shape= or like=."""
    shape, like = attrs["shape"], attrs["like"]
    if (shape is None) == (like is None):
        raise ShapeError("give either a shape or like=, not both" if shape is not None
                         else "needs a shape (a list) or like=<tensor>")
    if like is not None:
        t = b.type_of(like)
        shape, dtype = t.shape, t.dtype
        if float_only and dtype not in FLOAT_DTYPES:
            dtype = ctx.dtype
    else:
        dtype = ctx.dtype
    return _check_shape(shape), attrs["dtype"] or dtype


# ---- primitives: no inputs, one evaluator instruction or three ----

def _emit_uniform(pb: Any, node: Any, args: list[int]) -> int:
    u = pb.instr("RAND_UNIFORM", 0, node.attr("salt"))
    low, high = node.attr("low"), node.attr("high")
    return pb.instr("ADD_SCALAR", pb.instr("MUL_SCALAR", u, imm=high - low), imm=low)


def _emit_normal(pb: Any, node: Any, args: list[int]) -> int:
    z = pb.instr("RAND_NORMAL", 0, node.attr("salt"))
    return pb.instr("ADD_SCALAR", pb.instr("MUL_SCALAR", z, imm=node.attr("std")), imm=node.attr("mean"))


def _emit_bernoulli(pb: Any, node: Any, args: list[int]) -> int:
    u = pb.instr("RAND_UNIFORM", 0, node.attr("salt"))
    return pb.instr("LT", u, pb.instr("CONST", imm=node.attr("p")))


_PRIM = (AttrSpec("shape", "any"), AttrSpec("salt", "int"), AttrSpec("dtype", "dtype"))
for _name, _params, _emit, _doc in (
        ("random_uniform", (AttrSpec("low", "float"), AttrSpec("high", "float")), _emit_uniform,
         "uniform draws in [low, high) from the (seed, step, salt, element) stream"),
        ("random_normal", (AttrSpec("mean", "float"), AttrSpec("std", "float")), _emit_normal,
         "normal draws (Box-Muller on two counters per element) from the (seed, step, salt, element) stream"),
        ("random_bernoulli", (AttrSpec("p", "float"),), _emit_bernoulli,
         "1 with probability p, else 0, from the (seed, step, salt, element) stream")):
    register(OpDef(_name, (), _PRIM + _params, infer=_float_made_infer, pattern=Pattern.ELEMENTWISE,
                   kernel="ew", emit=_emit, differentiable=False, random=True, user=False, doc=_doc))

register(OpDef("fill", (), (AttrSpec("shape", "any"), AttrSpec("value", "float"), AttrSpec("dtype", "dtype")),
               infer=_made_infer, pattern=Pattern.ELEMENTWISE, kernel="ew",
               emit=lambda pb, node, args: pb.instr("CONST", imm=node.attr("value")), differentiable=False,
               reference=lambda shape, value, dtype: _np_full(shape, value, dtype),
               samples=lambda rng, dt: [_fill_sample((2, 3), 1.5, dt), _fill_sample((4,), -2.0, "i32")],
               user=False, doc="a tensor of one value"))


def _np_full(shape: tuple[int, ...], value: float, dtype: str) -> Any:
    import numpy as np

    from .common import dtype_np
    return np.full(shape, value, dtype=dtype_np(dtype))


def _fill_sample(shape: tuple[int, ...], value: float, dtype: str) -> Any:
    from .registry import Sample
    return Sample([], {"shape": shape, "value": value, "dtype": dtype}, grad=False)


def _triangle_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    shape = _check_shape(attrs["shape"])
    if len(shape) < 2:
        raise ShapeError(f"triangle needs a shape of rank >= 2 ([..., rows, cols]), got {list(shape)}")
    return [TensorType(attrs["dtype"], shape)]


def _np_triangle(shape: tuple[int, ...], k: int, upper: bool, dtype: str) -> Any:
    import numpy as np

    from .common import dtype_np
    rows, cols = shape[-2:]
    offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = offset >= k if upper else offset <= k
    return np.broadcast_to(keep, shape).astype(dtype_np(dtype))


def _triangle_samples(rng: Any, dt: str) -> list[Any]:
    from .registry import Sample
    return [Sample([], {"shape": (3, 5), "k": 0, "upper": False, "dtype": "bool"}, grad=False),
            Sample([], {"shape": (2, 4, 3), "k": 1, "upper": True, "dtype": dt}, grad=False),
            Sample([], {"shape": (5, 2), "k": -2, "upper": False, "dtype": "i32"}, grad=False)]


# Built at run time from the bound shape, so its size may be symbolic (a causal mask over T keys): a constant
# would need T at compile time.
register(OpDef("triangle", (), (AttrSpec("shape", "any", doc="[..., rows, cols]; symbolic dimensions allowed"),
                                AttrSpec("k", "int", 0, doc="the diagonal: 0 the main one, > 0 above it"),
                                AttrSpec("upper", "bool", False, doc="keep j - i >= k instead of j - i <= k"),
                                AttrSpec("dtype", "dtype", "bool")),
               infer=_triangle_infer, kernel="triangle",
               lower=lambda n, t: ([n.attr("k"), int(n.attr("upper"))], []), differentiable=False,
               reference=_np_triangle, samples=_triangle_samples,
               doc="1 (true) at [..., i, j] where j - i <= k (the lower triangle; j - i >= k with upper=true), "
                   "else 0: numpy's tril/triu of ones, and the causal mask of attention"))


# ---- the .dlm ops ----

def _random_expand(prim: str, params: tuple[str, ...]) -> Any:
    def expand(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
        shape, dtype = _target(b, ctx, attrs, float_only=True)
        if "std" in params and attrs["std"] < 0:
            raise ShapeError(f"std must be >= 0, got {attrs['std']}")
        if "p" in params and not 0.0 <= attrs["p"] <= 1.0:
            raise ShapeError(f"p must be in [0, 1], got {attrs['p']}")
        if "low" in params and not attrs["low"] <= attrs["high"]:
            raise ShapeError(f"low must not exceed high ({attrs['low']} > {attrs['high']})")
        extra = {k: attrs[k] for k in params}
        return (b.op1(prim, shape=shape, dtype=dtype, salt=ctx.salt(), **extra),)
    return expand


register(OpDef("normal", (), (SHAPE, LIKE, AttrSpec("mean", "float", 0.0), AttrSpec("std", "float", 1.0), DTYPE),
               expand=_random_expand("random_normal", ("mean", "std")), pattern=Pattern.ELEMENTWISE,
               doc="normal draws N(mean, std^2), seeded by (seed, step, call, element) like dropout; "
                   "`mu + std * normal(like=mu)` differentiates through mu and std"))
register(OpDef("uniform", (), (SHAPE, LIKE, AttrSpec("low", "float", 0.0), AttrSpec("high", "float", 1.0), DTYPE),
               expand=_random_expand("random_uniform", ("low", "high")), pattern=Pattern.ELEMENTWISE,
               doc="uniform draws in [low, high), seeded by (seed, step, call, element) like dropout"))
register(OpDef("bernoulli", (), (SHAPE, LIKE, AttrSpec("p", "float", 0.5), DTYPE),
               expand=_random_expand("random_bernoulli", ("p",)), pattern=Pattern.ELEMENTWISE,
               doc="1 with probability p, else 0 (a float tensor), seeded by (seed, step, call, element)"))


def _fill_expand(value: float | None) -> Any:
    def expand(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
        shape, dtype = _target(b, ctx, attrs, float_only=False)
        v = attrs["value"] if value is None else value
        return (b.op1("fill", shape=shape, value=float(v), dtype=dtype),)
    return expand


register(OpDef("zeros", (), (SHAPE, LIKE, DTYPE), expand=_fill_expand(0.0), pattern=Pattern.ELEMENTWISE,
               doc="a tensor of zeros, of a shape or like= another tensor"))
register(OpDef("ones", (), (SHAPE, LIKE, DTYPE), expand=_fill_expand(1.0), pattern=Pattern.ELEMENTWISE,
               doc="a tensor of ones, of a shape or like= another tensor"))
register(OpDef("full", (), (SHAPE, AttrSpec("value", "float", 0.0), LIKE, DTYPE), expand=_fill_expand(None),
               pattern=Pattern.ELEMENTWISE, doc="a tensor filled with value, of a shape or like= another tensor"))
