"""Shape ops: reshape, flatten, (un)squeeze (views: no kernel, no copy), transpose, concat, slice, sum_to."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, Sym, concrete, dim_div, dims_product, shape_str
from ..errors import ShapeError
from ..ir import TensorType
from .common import norm_axes, norm_axis, rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def _reshape_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    target = list(attrs["shape"])
    if sum(1 for d in target if d == -1) > 1:
        raise ShapeError(f"at most one -1 in reshape target {target}")
    for d in target:
        if isinstance(d, int) and d < -1:
            raise ShapeError(f"bad dimension {d} in reshape target")
    total = dims_product(x.shape)
    if -1 in target:
        known = dims_product(tuple(d for d in target if d != -1))
        rest = dim_div(total, known)
        if rest is None:
            raise ShapeError(f"cannot reshape {x} to {shape_str(tuple(target))}: {total} elements do not "
                             f"divide by {known}")
        target[target.index(-1)] = rest
    if dims_product(tuple(target)) != total:
        raise ShapeError(f"cannot reshape {x} ({total} elements) to {shape_str(tuple(target))}")
    return [TensorType(x.dtype, tuple(target))]


def _back_to_input(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    return [b.op1("reshape", gs[0], shape=b.type_of(node.inputs[0]).shape)]


register(OpDef("reshape", ("x",), (AttrSpec("shape", "shape"),), infer=_reshape_infer, pattern=Pattern.INJECTIVE,
               view=True, grad=_back_to_input, reference=lambda x, shape: x.reshape(shape),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3, 4), dt)], {"shape": (4, -1)}),
                                        Sample([rand(rng, (6,), dt)], {"shape": (1, 2, 3)})],
               doc="same data, new shape; one dimension may be -1"))


def _flatten_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    axis = norm_axis(attrs["axis"], x.rank) if x.rank else 0
    head = x.shape[:axis]
    return [TensorType(x.dtype, tuple(head) + (dims_product(x.shape[axis:]),))]


register(OpDef("flatten", ("x",), (AttrSpec("axis", "int", 1),), infer=_flatten_infer, pattern=Pattern.INJECTIVE,
               view=True, grad=_back_to_input,
               reference=lambda x, axis=1: x.reshape(x.shape[:axis] + (-1,)),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3, 4), dt)], {"axis": 1})],
               doc="keeps dims before `axis`, merges the rest into one"))


def _squeeze_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    axes = norm_axes(tuple(attrs["axis"]), x.rank)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"cannot squeeze axis {a} of {x}: its size is {x.shape[a]}, not 1")
    return [TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _unsqueeze_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    shape = list(x.shape)
    axis = norm_axis(attrs["axis"], x.rank + 1)
    shape.insert(axis, 1)
    return [TensorType(x.dtype, tuple(shape))]


register(OpDef("squeeze", ("x",), (AttrSpec("axis", "ints"),), infer=_squeeze_infer, pattern=Pattern.INJECTIVE,
               view=True, grad=_back_to_input, reference=lambda x, axis: np.squeeze(x, tuple(axis)),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 1, 3), dt)], {"axis": (1,)})],
               doc="removes size-1 axes"))
register(OpDef("unsqueeze", ("x",), (AttrSpec("axis", "int"),), infer=_unsqueeze_infer,
               pattern=Pattern.INJECTIVE, view=True, grad=_back_to_input,
               reference=lambda x, axis: np.expand_dims(x, axis),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3), dt)], {"axis": 1})],
               doc="inserts a size-1 axis at `axis`"))


def _perm(attrs: dict[str, Any], rank: int) -> tuple[int, ...]:
    perm = attrs.get("perm")
    if perm is None:
        return tuple(reversed(range(rank)))
    if not isinstance(perm, (list, tuple)):
        raise ShapeError(f"perm must be a list of axes, got {perm!r}")
    if sorted(norm_axis(p, rank) for p in perm) != list(range(rank)):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {rank} axes")
    return tuple(norm_axis(p, rank) for p in perm)


def _transpose_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    perm = _perm(attrs, x.rank)
    return [TensorType(x.dtype, tuple(x.shape[p] for p in perm))]


def _transpose_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    perm = _perm(node.attr_dict, b.type_of(node.inputs[0]).rank)
    inverse = tuple(int(i) for i in np.argsort(perm))
    return [b.op1("transpose", gs[0], perm=inverse)]


def _transpose_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    perm = _perm(node.attr_dict, types[0].rank)
    return [len(perm), *perm], []


_PERM = AttrSpec("perm", "any", None, doc="axis order; default reverses the axes")
register(OpDef("transpose", ("x",), (_PERM,), infer=_transpose_infer, pattern=Pattern.INJECTIVE,
               kernel="transpose", lower=_transpose_lower, grad=_transpose_grad,
               reference=lambda x, perm=None: np.ascontiguousarray(np.transpose(x, perm)),
               samples=lambda rng, dt: [Sample([rand(rng, (3, 4), dt)]),
                                        Sample([rand(rng, (2, 3, 5), dt)], {"perm": (1, 2, 0)}),
                                        Sample([rand(rng, (2, 3, 4, 5), dt)], {"perm": (0, 1, 3, 2)})],
               doc="permutes axes (NumPy's transpose)"))
register(OpDef("permute", ("x",), (AttrSpec("perm", "ints"),), infer=_transpose_infer,
               pattern=Pattern.INJECTIVE, kernel="transpose", lower=_transpose_lower, grad=_transpose_grad,
               reference=lambda x, perm: np.ascontiguousarray(np.transpose(x, perm)),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3, 5), dt)], {"perm": (2, 0, 1)})],
               doc="transpose with an explicit axis order"))


def _concat_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    if not types:
        raise ShapeError("needs at least one tensor")
    first = types[0]
    axis = norm_axis(attrs["axis"], first.rank)
    total: Dim = 0
    for t in types:
        if t.dtype != first.dtype or t.rank != first.rank or any(
                t.shape[i] != first.shape[i] for i in range(first.rank) if i != axis):
            raise ShapeError(f"cannot concatenate {first} and {t} along axis {axis}")
        total = concrete(total, "concat") + concrete(t.shape[axis], "concat axis")
    shape = list(first.shape)
    shape[axis] = total
    return [TensorType(first.dtype, tuple(shape))]


def _concat_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    axis = norm_axis(node.attr("axis"), b.type_of(node.outputs[0]).rank)
    out: list[int | None] = []
    start = 0
    for v in node.inputs:
        size = concrete(b.type_of(v).shape[axis], "concat axis")
        out.append(b.op1("slice", gs[0], axis=axis, start=start, end=start + size))
        start += size
    return out


register(OpDef("concat", ("*xs",), (AttrSpec("axis", "int", 0),), infer=_concat_infer,
               pattern=Pattern.INJECTIVE, kernel="concat",
               lower=lambda n, t: ([norm_axis(n.attr("axis"), t[0].rank)], []), grad=_concat_grad,
               reference=lambda *xs, axis=0: np.concatenate(xs, axis=axis),
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3), dt), rand(rng, (2, 5), dt)], {"axis": 1}),
                                        Sample([rand(rng, (1, 4), dt), rand(rng, (3, 4), dt),
                                                rand(rng, (2, 4), dt)], {"axis": 0})],
               doc="joins tensors along an existing axis"))


def _slice_params(t: TensorType, attrs: dict[str, Any]) -> tuple[int, int, int, Dim]:
    axis = norm_axis(attrs["axis"], t.rank)
    step = attrs["step"]
    if step < 1:
        raise ShapeError(f"slice step must be >= 1, got {step}")
    start, end = attrs["start"], attrs["end"]
    if isinstance(end, Sym):
        # The first T rows of a table (position embeddings of a sequence of symbolic length T): the count is
        # T itself, checked against the axis once T is bound.
        if start != 0 or step != 1:
            raise ShapeError(f"a symbolic end ({end}) needs start 0 and step 1")
        return axis, 0, 1, end
    size = concrete(t.shape[axis], "slice axis")
    start = max(0, min(size, start + size if start < 0 else start))
    end = size if end is None else max(0, min(size, end + size if end < 0 else end))
    count = max(0, (end - start + step - 1) // step)
    return axis, start, step, count


def _slice_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    axis, _, _, count = _slice_params(types[0], attrs)
    shape = list(types[0].shape)
    shape[axis] = count
    return [TensorType(types[0].dtype, tuple(shape))]


def _slice_ints(t: TensorType, attrs: dict[str, Any]) -> list[int]:
    axis, start, step, _ = _slice_params(t, attrs)
    starts = [0] * t.rank
    steps = [1] * t.rank
    starts[axis], steps[axis] = start, step
    return [t.rank, *starts, *steps]


_SLICE_ATTRS = (AttrSpec("axis", "int"), AttrSpec("start", "int", 0), AttrSpec("end", "any", None),
                AttrSpec("step", "int", 1))
register(OpDef("slice", ("x",), _SLICE_ATTRS, infer=_slice_infer, pattern=Pattern.INJECTIVE, kernel="slice",
               lower=lambda n, t: (_slice_ints(t[0], n.attr_dict), []),
               grad=lambda b, n, gs: [b.op1("slice_grad", gs[0], like=b.type_of(n.inputs[0]).shape,
                                            **{k: v for k, v in n.attrs})],
               reference=lambda x, axis, start=0, end=None, step=1: np.ascontiguousarray(
                   x[(slice(None),) * (axis % x.ndim) + (slice(start, end, step),)]),
               samples=lambda rng, dt: [Sample([rand(rng, (4, 7), dt)], {"axis": 1, "start": 1, "end": 6, "step": 2}),
                                        Sample([rand(rng, (5, 3), dt)], {"axis": 0, "start": -3})],
               doc="elements start:end:step along one axis (Python slice semantics)"))


def _slice_grad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    return [TensorType(types[0].dtype, tuple(attrs["like"]))]


register(OpDef("slice_grad", ("g",), (AttrSpec("like", "any"), *_SLICE_ATTRS), infer=_slice_grad_infer,
               pattern=Pattern.INJECTIVE, kernel="slice_grad",
               lower=lambda n, t: (_slice_ints(TensorType(t[0].dtype, n.attr("like")), n.attr_dict), []),
               grad=lambda b, n, gs: [b.op1("slice", gs[0], **{k: v for k, v in n.attrs if k != "like"})],
               user=False, reference=None, samples=None))


def _sum_to_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, target = types[0], tuple(attrs["shape"])
    if len(target) > x.rank:
        raise ShapeError(f"cannot sum {x} down to {shape_str(target)}")
    padded = (1,) * (x.rank - len(target)) + target
    for xd, td in zip(x.shape, padded):
        if td != xd and td != 1:
            raise ShapeError(f"cannot sum {x} down to {shape_str(target)}")
    return [TensorType(x.dtype, target)]


def _sum_to_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    x = types[0]
    target = tuple(node.attr("shape"))
    padded = (1,) * (x.rank - len(target)) + target
    return [x.rank, *[concrete(d, "sum_to") for d in padded]], []


def _sum_to_tail(node: Any, space: tuple[Any, ...]) -> int | None:
    """How sum_to reduces a fused group's space [..., D] (see OpDef.tail)."""
    target = tuple(node.attr("shape"))
    if all(d == 1 for d in target):
        return 0
    return 1 if target[-1:] == space[-1:] and all(d == 1 for d in target[:-1]) else None


register(OpDef("sum_to", ("x",), (AttrSpec("shape", "shape"),), infer=_sum_to_infer, pattern=Pattern.REDUCTION,
               kernel="sum_to", lower=_sum_to_lower, tail=_sum_to_tail,
               grad=lambda b, n, gs: [b.op1("broadcast_to", gs[0], shape=b.type_of(n.inputs[0]).shape)],
               user=False, reference=lambda x, shape: _sum_to_np(x, shape),
               samples=lambda rng, dt: [Sample([rand(rng, (4, 5), dt)], {"shape": (5,)}),
                                        Sample([rand(rng, (4, 5), dt)], {"shape": (4, 1)}),
                                        Sample([rand(rng, (2, 3, 4), dt)], {"shape": (3, 1)})],
               doc="sums a broadcast tensor back to `shape` (the gradient of broadcasting)"))


def _sum_to_np(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    lead = x.ndim - len(shape)
    y = x.sum(axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and y.shape[i] != 1)
    return y.sum(axis=axes, keepdims=True).astype(x.dtype) if axes else y.astype(x.dtype)
