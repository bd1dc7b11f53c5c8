"""Helpers shared by the op families: shape/dtype rules, gradient plumbing and sample generators."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..dims import Dim, broadcast_shapes, shape_str
from ..errors import ShapeError
from ..ir import FLOAT_DTYPES, NUMPY_DTYPES, TensorType

if TYPE_CHECKING:
    from ..ir import GraphBuilder


def same_dtype(op: str, types: list[TensorType]) -> str:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        listed = " and ".join(str(t) for t in types)
        raise ShapeError(f"operands have different dtypes ({listed}); convert one with cast()")
    return types[0].dtype


def need_float(op: str, t: TensorType) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"needs a floating-point tensor (f32 or f64), got {t}")


def broadcast_all(types: list[TensorType]) -> tuple[Dim, ...]:
    shape: tuple[Dim, ...] = ()
    for t in types:
        shape = broadcast_shapes(shape, t.shape)
    return shape


def norm_axis(axis: int, rank: int) -> int:
    # A scalar has no axis to name (as in NumPy): accepting axis 0 here let a reduction reach its kernel with
    # an axis the kernel refuses.
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ShapeError(f"an axis must be an integer, got {axis!r}")
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


def norm_axes(axes: tuple[int, ...] | None, rank: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(rank))
    out = sorted({norm_axis(a, rank) for a in axes})
    if len(out) != len(axes):
        raise ShapeError(f"repeated axis in {list(axes)}")
    return tuple(out)


def sum_to(b: "GraphBuilder", v: int, shape: tuple[Dim, ...]) -> int:
    """The gradient of broadcasting: sums v back down to `shape`."""
    vt = b.type_of(v)
    if vt.shape == tuple(shape):
        return v
    return b.op1("sum_to", v, shape=tuple(shape))


def ones_like_shape(shape: tuple[Dim, ...]) -> str:
    return shape_str(shape)


# ---- sample generation for the test harness ----

def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, low: float = -1.0,
         high: float = 1.0) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(dtype_np(dtype))


def rand_away(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, gap: float = 0.1) -> np.ndarray:
    """Values in ±[gap, 1]: keeps finite differences away from a kink at 0."""
    mag = rng.uniform(gap, 1.0, size=shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(dtype_np(dtype))


def dtype_np(dtype: str) -> Any:
    """The NumPy scalar type of a dtype (the one table: ir.NUMPY_DTYPES)."""
    return NUMPY_DTYPES[dtype]


UNARY_SHAPES = [(7,), (3, 5), (2, 3, 4), ()]
BINARY_SHAPES = [((3, 5), (3, 5)), ((4, 6), (6,)), ((2, 1, 5), (3, 1)), ((5,), ()), ((1, 4), (3, 1))]


def erf_np(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(np.asarray(x, dtype=np.float64)).astype(np.asarray(x).dtype)


def unary_samples(gen: Callable[[np.random.Generator, tuple[int, ...], str], np.ndarray],
                  attrs: dict[str, Any] | None = None):
    def samples(rng: np.random.Generator, dtype: str) -> list:
        from .registry import Sample
        return [Sample([gen(rng, s, dtype)], dict(attrs or {})) for s in UNARY_SHAPES]
    return samples


def binary_samples(gen_a: Callable, gen_b: Callable | None = None):
    def samples(rng: np.random.Generator, dtype: str) -> list:
        from .registry import Sample
        gb = gen_b or gen_a
        return [Sample([gen_a(rng, sa, dtype), gb(rng, sb, dtype)]) for sa, sb in BINARY_SHAPES]
    return samples
