"""Embeddings: integer ids to rows of a learned table.

`embedding(ids, vocab, dim)` owns `weight` [vocab, dim] and is a gather of rows; its gradient scatter-adds the
output gradient back into the rows that were read (the `gather_rows` / `scatter_add_rows` kernels, which sum
repeated ids in a fixed order, so results do not depend on the thread count).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..initializers import make_spec
from ..ir import TensorType
from .common import need_float, rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def _check_ids(t: TensorType) -> None:
    if t.dtype not in ("i32", "i64"):
        raise ShapeError(f"ids must be integers (i32 or i64), got {t}")


def _lookup_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    table, ids = types
    need_float("", table)
    _check_ids(ids)
    if table.rank != 2:
        raise ShapeError(f"the table must be [vocab, dim], got {table}")
    return [TensorType(table.dtype, tuple(ids.shape) + (table.shape[1],))]


def _grad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    ids, gy = types
    _check_ids(ids)
    return [TensorType(gy.dtype, (attrs["vocab"], gy.shape[-1]))]


def _scatter_np(ids: np.ndarray, gy: np.ndarray, vocab: int) -> np.ndarray:
    out = np.zeros((vocab, gy.shape[-1]), dtype=np.float64)
    np.add.at(out, ids.reshape(-1), gy.reshape(-1, gy.shape[-1]).astype(np.float64))
    return out.astype(gy.dtype)


def _ids(rng: np.random.Generator, shape: tuple[int, ...], vocab: int, dtype: Any = np.int32) -> np.ndarray:
    return rng.integers(0, vocab, size=shape).astype(dtype)


register(OpDef("embedding_lookup", ("table", "ids"), infer=_lookup_infer, pattern=Pattern.INJECTIVE,
               kernel="gather_rows", lower=lambda n, t: ([], []),
               grad=lambda b, n, gs: [b.op1("embedding_grad", n.inputs[1], gs[0],
                                            vocab=int(b.type_of(n.inputs[0]).shape[0])), None],
               user=False, reference=lambda table, ids: table[ids],
               samples=lambda rng, dt: [Sample([rand(rng, (5, 3), dt), _ids(rng, (2, 4), 5)]),
                                        Sample([rand(rng, (4, 6), dt), _ids(rng, (7,), 4, np.int64)])],
               doc="rows of table [vocab, dim] at ids; output ids.shape + [dim]"))
register(OpDef("embedding_grad", ("ids", "gy"), (AttrSpec("vocab", "int"),), infer=_grad_infer,
               pattern=Pattern.OPAQUE, kernel="scatter_add_rows", lower=lambda n, t: ([], []),
               differentiable=False, user=False, reference=_scatter_np,
               samples=lambda rng, dt: [Sample([_ids(rng, (3, 4), 5), rand(rng, (3, 4, 2), dt)], {"vocab": 5},
                                               grad=False)],
               doc="sums gy rows into a [vocab, dim] table at ids (repeated ids add up)"))


def _embedding_expand(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    ids = ins[0]
    _check_ids(b.type_of(ids))
    vocab, dim = attrs["vocab"], attrs["dim"]
    if vocab < 1 or dim < 1:
        raise ShapeError(f"vocab and dim must be positive, got {vocab} and {dim}")
    dtype = attrs["dtype"]
    # The ids carry no float dtype to follow, so the table takes the program's precision like a declared f32
    # tensor does (f64 programs promote f32).
    if dtype == "f32" and ctx.dtype == "f64":
        dtype = "f64"
    table = ctx.param("weight", TensorType(dtype, (vocab, dim)), attrs["init"], (vocab, dim))
    return (b.op1("embedding_lookup", table, ids),)


register(OpDef("embedding", ("ids",),
               (AttrSpec("vocab", "int", doc="number of ids (rows of the table)"),
                AttrSpec("dim", "int", doc="vector size"),
                AttrSpec("init", "any", make_spec("normal", {"std": 1.0}), doc="initializer of weight"),
                AttrSpec("dtype", "dtype", "f32")),
               expand=_embedding_expand, layer=True,
               doc="learned vectors for integer ids: weight [vocab, dim] (normal(0, 1) init), output "
                   "ids.shape + [dim]"))
