"""Rows by index: `gather(x, index)` and `scatter_add(src, index, size)`, the message passing of graph networks.

A graph is given as edge lists, integer inputs `src: i32[E]` and `dst: i32[E]`. `gather(h, src)` reads each
edge's source row ([E, F] from h [N, F]); `scatter_add(messages, dst, N)` sums the messages into their
destination rows ([N, F]; rows no edge reaches are zero). That is PyTorch's `index_select` and
`index_add_`/`torch_scatter.scatter(..., reduce="sum")`, TensorFlow's `gather` and `unsorted_segment_sum`.
Each is the other's gradient. Both run on the kernels of the embedding pair (csrc/kernels/shape/shape_cpu.cpp:
`gather_rows`, `scatter_add_rows`), which check every index before touching memory (an index outside the
rows is an IndexError naming it) and sum repeated indices in a fixed order, so results do not depend on the
thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Sym, shape_str
from ..errors import ShapeError
from ..ir import TensorType
from .common import rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def _check_index(t: TensorType) -> None:
    if t.dtype not in ("i32", "i64"):
        raise ShapeError(f"the index must be integers (i32 or i64), got {t}")


def _gather_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, index = types
    _check_index(index)
    if x.rank < 1:
        raise ShapeError(f"gather reads rows: x needs rank >= 1, got {x}")
    return [TensorType(x.dtype, tuple(index.shape) + tuple(x.shape[1:]))]


def _scatter_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    src, index = types
    _check_index(index)
    size = attrs["size"]
    if isinstance(size, bool) or not (isinstance(size, Sym) or isinstance(size, int) and size >= 1):
        raise ShapeError(f"size (the number of rows of the result) must be a positive dimension, got {size!r}")
    if src.dtype not in ("f32", "f64"):
        raise ShapeError(f"scatter_add sums floating-point rows (f32 or f64), got {src}")
    if tuple(src.shape[:index.rank]) != tuple(index.shape):
        raise ShapeError(f"src {src} must start with the index's shape {shape_str(tuple(index.shape))} "
                         f"(one row per index)")
    return [TensorType(src.dtype, (size,) + tuple(src.shape[index.rank:]))]


def _gather_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x, index = node.inputs
    return [b.op1("scatter_add", gs[0], index, size=b.type_of(x).shape[0]), None]


def _scatter_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    return [b.op1("gather", gs[0], node.inputs[1]), None]


def _scatter_np(src: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    rest = src.shape[index.ndim:]
    out = np.zeros((size,) + rest, dtype=np.float64)
    np.add.at(out, index.reshape(-1), src.reshape((-1,) + rest).astype(np.float64))
    return out.astype(src.dtype)


def _index(rng: np.random.Generator, shape: tuple[int, ...], rows: int, dtype: Any = np.int32) -> np.ndarray:
    return rng.integers(0, rows, size=shape).astype(dtype)


def _gather_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (5, 3), dt), _index(rng, (2, 4), 5)]),
            Sample([rand(rng, (4,), dt), _index(rng, (6,), 4, np.int64)]),
            Sample([rand(rng, (3, 2, 2), dt), _index(rng, (5,), 3)])]


def _scatter_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (6, 3), dt), _index(rng, (6,), 4)], {"size": 4}),
            Sample([rand(rng, (2, 3, 2), dt), _index(rng, (2, 3), 3)], {"size": 5}),  # rows 3, 4 stay zero
            Sample([rand(rng, (7,), dt), _index(rng, (7,), 3, np.int64)], {"size": 3})]


register(OpDef("gather", ("x", "index"), infer=_gather_infer, pattern=Pattern.INJECTIVE, kernel="gather_rows",
               lower=lambda n, t: ([], []), grad=_gather_grad, reference=lambda x, index: x[index],
               samples=_gather_samples,
               doc="rows of x [V, ...] at index (integers in [0, V), any shape): index.shape + x.shape[1:]; "
                   "an edge's source features, gather(h, src)"))
register(OpDef("scatter_add", ("src", "index"), (AttrSpec("size", "any", doc="rows of the result: an integer "
                                                                          "or a dimension such as N"),),
               infer=_scatter_infer, pattern=Pattern.OPAQUE, kernel="scatter_add", lower=lambda n, t: ([], []),
               grad=_scatter_grad, reference=_scatter_np, samples=_scatter_samples,
               doc="sums the rows of src [index.shape..., ...] into [size, ...] at index (integers in [0, size)); "
                   "rows nothing reaches are zero: message aggregation, scatter_add(m, dst, N)"))
