"""Counting integer tensors of symbolic length (`Iota`): position ids built with Range over the sequence length
or sliced from a `position_ids` buffer, and the index arithmetic of Hugging Face's mask functions
(`batch * T + kv`), followed through the layout ops at import time.

dlc has no integer tensor of a symbolic length, but it needs none: the lookup of rows 0, 1, ... of a table is
the table's first rows, `slice(table, 0, 0, T)`; a lookup of one repeated id is that row broadcast; and a
Gather of a flattened [N, T] mask at `b * T + t` is the mask itself, reshaped. Unsqueeze, Squeeze, Reshape to
the same entries, Expand, Slice from the start, Add, Mul by a dimension, integer Casts and comparisons that
hold everywhere or nowhere are computed here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..dims import Dim, Sym, dim_mul, dims_product
from .symbolic import Iota, IotaStack, axes_of, counting, int_vec, items_of, shape_value
from .values import Node, Tensor, Unsupported, literal

_COMPARE = ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")


def iota_node(im: Any, node: Node, ins: list[Any]) -> Any:
    op = node.op
    x = ins[0]
    if op == "Gather" and isinstance(ins[1], Iota) and isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return _lookup(im, node, x, ins[1])
    if op in ("GatherElements", "Gather") and isinstance(ins[1], Iota) and _uniform(x) is not None:
        shape = ins[1].shape if op == "GatherElements" else _gathered_shape(node, x, ins[1])
        return counting(shape, None, _uniform(x))  # type: ignore[arg-type]
    if op == "Where" and isinstance(x, Iota) and not x.terms:
        return _where(im, node, x, ins)
    if op in ("Max", "Min") and _only_measured(im, node):
        # transformers' mask functions broadcast their index tensors with Max to learn the mask's shape
        shapes = [v.shape for v in ins if v is not None]
        out_shape = shapes[0]
        for other in shapes[1:]:
            out_shape = broadcast_shape(out_shape, other)
        return counting(out_shape, None, 0)  # its values are never read: any fill stands for them
    if op == "Concat" and all(isinstance(v, Iota) for v in ins):
        return _stack(node, ins)
    if op in ("Add", "Mul", "And", "Or") and not isinstance(x, Iota):
        x, ins = ins[1], [ins[1], x]  # commutative: the Iota first
    if not isinstance(x, Iota):
        raise Unsupported(f"{op} with position ids of symbolic length as its second input")
    if op == "Shape":
        return shape_value(node, list(x.shape))
    if op in ("Cast", "Identity"):
        to = {6: "i32", 7: "i64", 9: "bool"}.get(int(node.attr("to", 7)))
        if op == "Cast" and (to is None or (to == "bool" and x.terms)):
            raise Unsupported("a cast of position ids of symbolic length to a non-integer type")
        return replace(x, start=int(bool(x.start)) if to == "bool" else x.start, dtype=to or x.dtype)
    if op in _COMPARE and isinstance(ins[1], np.ndarray) and ins[1].size == 1:
        return _compare(x, op, int(ins[1].reshape(())))
    if op in _COMPARE and isinstance(ins[1], Iota):
        return _triangle(im, node, x, ins[1])
    if op in ("And", "Or"):
        other = _as_iota(ins[1])
        if x.terms or other is None or other.terms:
            raise Unsupported(f"{op} of index tensors that are not filled")
        value = (x.start and other.start) if op == "And" else (x.start or other.start)
        return counting(broadcast_shape(x.shape, other.shape), None, int(bool(value)), dtype="bool")
    if op == "Unsqueeze":
        axes = axes_of(im, node, 1, 13) or []
        rank = len(x.shape) + len(axes)
        new = sorted(a % rank for a in axes)
        old_to_new = [i for i in range(rank) if i not in new]
        shape = [1] * rank
        for i, d in zip(old_to_new, x.shape):
            shape[i] = d
        return _moved(x, old_to_new, tuple(shape))
    if op == "Squeeze":
        axes = axes_of(im, node, 1, 13)
        gone = {i for i, d in enumerate(x.shape) if d == 1} if axes is None else {a % len(x.shape) for a in axes}
        keep = [i for i in range(len(x.shape)) if i not in gone]
        return _moved(x, [keep.index(i) if i in keep else -1 for i in range(len(x.shape))],
                      tuple(x.shape[i] for i in keep))
    if op in ("Add", "Sub"):
        other = _as_iota(ins[1])
        if other is None:
            raise Unsupported("arithmetic on position ids other than adding integers or other ids")
        if op == "Sub":
            if other.terms:
                raise Unsupported("the difference of two counting index tensors")
            other = replace(other, start=-other.start)
        return _sum(x, other)
    if op == "Mul":
        factor, scalar = items_of(ins[1], "Mul")
        if not scalar and len(factor) != 1:
            raise Unsupported("Mul of position ids by a vector")
        c = factor[0]
        if isinstance(c, Sym) and x.start:
            raise Unsupported("a product of a symbolic dimension and ids that do not start at 0")
        terms = tuple((a, dim_mul(k, c)) for a, k in x.terms)  # type: ignore[arg-type]
        return Iota(x.shape, terms, x.start * int(c) if not isinstance(c, Sym) else 0, x.dtype)
    if op == "Expand":
        target, _ = items_of(ins[1], "Expand")
        return _sum(x, counting(tuple(target), None, 0))  # type: ignore[arg-type]
    if op == "Reshape":
        target, _ = items_of(ins[1], "Reshape")
        kept = [i for i, d in enumerate(x.shape) if d != 1]
        slots = [i for i, d in enumerate(target) if d != 1]
        if [x.shape[i] for i in kept] == [target[i] for i in slots] and -1 not in target and 0 not in target:
            mapping = [slots[kept.index(i)] if i in kept else -1 for i in range(len(x.shape))]
            return _moved(x, mapping, tuple(target))  # type: ignore[arg-type]
        raise Unsupported("a Reshape of position ids of symbolic length that moves their entries")
    if op == "Slice":
        return _slice(im, node, x)
    raise Unsupported(f"{op} of position ids of symbolic length")


def _stack(node: Node, ins: list[Iota]) -> IotaStack:
    """Ids of one shape [..., 1] concatenated along the last axis: index tuples (GatherND's indices)."""
    shape = ins[0].shape
    if int(node.attr("axis", 0)) % len(shape) != len(shape) - 1 or shape[-1] != 1 \
            or any(v.shape != shape for v in ins):
        raise Unsupported("a Concat of position ids of symbolic length other than index tuples")
    keep = list(range(len(shape) - 1)) + [-1]
    return IotaStack(tuple(_moved(v, keep, tuple(shape[:-1])) for v in ins))


def _only_measured(im: Any, node: Node) -> bool:
    """Whether only Shape nodes read the node's output (not a graph output either)."""
    out = node.outputs[0]
    readers = im.readers.get(out, [])
    return bool(readers) and out not in im.graph_outputs and all(r.op_type == "Shape" for r in readers)


def _moved(x: Iota, mapping: list[int], shape: tuple[Dim, ...]) -> Iota:
    """x with axis i now at mapping[i] (-1: a size-1 axis dropped, whose index is always 0)."""
    terms = tuple((mapping[a], k) for a, k in x.terms if mapping[a] >= 0)
    return Iota(shape, terms, x.start, x.dtype)


def _sum(a: Iota, b: Iota) -> Iota:
    """a + b with NumPy broadcasting (both aligned at their last axis)."""
    shape = broadcast_shape(a.shape, b.shape)
    terms: dict[int, Dim] = {}
    for x in (a, b):
        shift = len(shape) - len(x.shape)
        for axis, k in x.terms:
            terms[axis + shift] = k if axis + shift not in terms else _add_dims(terms[axis + shift], k)
    return Iota(shape, tuple(sorted(terms.items())), a.start + b.start, a.dtype)


def _add_dims(a: Dim, b: Dim) -> Dim:
    if isinstance(a, Sym) or isinstance(b, Sym):
        raise Unsupported("a sum of symbolic index coefficients")
    return a + b


def _as_iota(v: Any) -> Iota | None:
    """An Iota, or a constant integer array that counts along at most one axis, as one."""
    if isinstance(v, Iota):
        return v
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iub" or v.size == 0:
        return None
    if np.all(v == v.reshape(-1)[0]):
        return counting(tuple(v.shape), None, int(v.reshape(-1)[0]), dtype="bool" if v.dtype == bool else "i64")
    long = [i for i, d in enumerate(v.shape) if d > 1]
    if len(long) != 1:
        return None
    row = v.reshape(-1).astype(np.int64)
    step = int(row[1] - row[0])
    if not np.array_equal(row, row[0] + step * np.arange(row.size)):
        return None
    return counting(tuple(v.shape), long[0], int(row[0]), step)


def _where(im: Any, node: Node, cond: Iota, ins: list[Any]) -> Any:
    chosen = ins[1] if cond.start else ins[2]
    shapes = [v.shape for v in ins]
    shape = broadcast_shape(broadcast_shape(shapes[0], shapes[1]), shapes[2])
    if isinstance(chosen, Tensor):
        im.emit(node.outputs[0], f"broadcast_to({chosen.name}, [{', '.join(im.dim_text(d) for d in shape)}])"
                if tuple(chosen.shape) != shape else chosen.name)
        return None
    value = _uniform(chosen) if not isinstance(chosen, np.ndarray) or chosen.dtype.kind != "f" else None
    if value is not None:
        return counting(shape, None, value, dtype=chosen.dtype if isinstance(chosen, Iota) else "i64")
    if isinstance(chosen, np.ndarray) and chosen.size and np.all(chosen == chosen.reshape(-1)[0]):
        from .values import dlc_dtype
        value_text = literal(float(chosen.reshape(-1)[0]))
        im.emit(node.outputs[0], f"full([{', '.join(im.dim_text(d) for d in shape)}], value={value_text}, "
                                 f"dtype=\"{dlc_dtype(chosen.dtype)}\")")
        return None
    raise Unsupported("Where choosing between non-uniform values along symbolic dimensions")


def _compare(x: Iota, op: str, c: int) -> Iota:
    """A comparison that holds for every id or for none (`kv_idx >= 0` in mask functions): a filled bool."""
    if x.axis is None:
        low = high = x.start
    elif x.step >= 0:
        low, high = x.start, None  # the length is symbolic: no upper bound
    else:
        low, high = None, x.start
    checks = {"GreaterOrEqual": (low is not None and low >= c, high is not None and high < c),
              "Greater": (low is not None and low > c, high is not None and high <= c),
              "LessOrEqual": (high is not None and high <= c, low is not None and low > c),
              "Less": (high is not None and high < c, low is not None and low >= c),
              "Equal": (low is not None and low == high == c, (low is not None and low > c)
                        or (high is not None and high < c))}
    always, never = checks[op]
    if not always and not never:
        raise Unsupported(f"{op} of position ids of symbolic length with {c} holds for some ids only")
    return counting(x.shape, None, int(always), dtype="bool")


def _triangle(im: Any, node: Node, a: Iota, b: Iota) -> None:
    """Ids counting along the last two axes compared (`kv_idx <= q_idx` in mask functions): with row ids
    r0 + i and column ids c0 + j, `c0 + j <= r0 + i` is j - i <= r0 - c0, a triangle of dlc's `triangle`,
    built when the plan runs (the length is symbolic)."""
    shape = broadcast_shape(a.shape, b.shape)
    rank = len(shape)

    def place(x: Iota) -> tuple[int, int] | None:  # (axis in the broadcast shape, start) of ids counting by 1
        if len(x.terms) != 1 or x.terms[0][1] != 1:
            return None
        return x.terms[0][0] + rank - len(x.shape), x.start

    pa, pb = place(a), place(b)
    if pa is None or pb is None or {pa[0], pb[0]} != {rank - 2, rank - 1} or node.op == "Equal":
        raise Unsupported(f"{node.op} of two index tensors other than ids counting along the last two axes")
    op = node.op
    if pa[0] == rank - 2:  # a counts the rows: `a < b` is `b > a`
        op = {"Less": "Greater", "Greater": "Less", "LessOrEqual": "GreaterOrEqual",
              "GreaterOrEqual": "LessOrEqual"}[op]
        pa, pb = pb, pa
    d = pb[1] - pa[1]
    k, upper = {"LessOrEqual": (d, False), "Less": (d - 1, False), "GreaterOrEqual": (d, True),
                "Greater": (d + 1, True)}[op]
    im.emit(node.outputs[0], f"triangle([{', '.join(im.dim_text(x) for x in shape)}], k={k}, "
                             f"upper={'true' if upper else 'false'}, dtype=\"bool\")")
    im.triangles[node.outputs[0]] = (k, upper)  # attention reads a causal one as causal=true


def broadcast_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    r = max(len(a), len(b))
    a, b = (1,) * (r - len(a)) + tuple(a), (1,) * (r - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != 1 and y != 1 and x != y:
            raise Unsupported(f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def _uniform(x: Any) -> int | None:
    """The one value of a tensor of a repeated integer (a buffer of zeros, or a filled Iota), else None."""
    if isinstance(x, Iota) and not x.terms:
        return x.start
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.size and np.all(x == x.reshape(-1)[0]):
        return int(x.reshape(-1)[0])
    return None


def _gathered_shape(node: Node, x: Any, idx: Iota) -> tuple[Dim, ...]:
    axis = int(node.attr("axis", 0)) % len(x.shape)
    return tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:])


def _slice(im: Any, node: Node, x: Iota) -> Iota:
    starts = int_vec(im, node.inputs[1], "starts")
    ends = int_vec(im, node.inputs[2], "ends")
    axes = int_vec(im, node.inputs[3], "axes") if len(node.inputs) > 3 and node.inputs[3] else \
        list(range(len(starts)))
    steps = int_vec(im, node.inputs[4], "steps") if len(node.inputs) > 4 and node.inputs[4] else [1] * len(starts)
    shape = list(x.shape)
    start = x.start
    for a, s, e, st in zip(axes, starts, ends, steps):
        a = int(a) % len(shape)
        whole = s == 0 and (e == shape[a] or (isinstance(e, int) and e >= 2 ** 31 - 1)) and st == 1
        if whole:
            continue
        if a != x.axis or isinstance(s, Sym) or st != 1 or isinstance(shape[a], int):
            raise Unsupported("a Slice of position ids of symbolic length other than their first entries")
        shape[a] = e  # type: ignore[assignment]
        start += int(s) * x.step
    return Iota(tuple(shape), x.terms, start, x.dtype)


def iota_from_buffer(arr: np.ndarray, axis: int, end: Dim) -> Iota | None:
    """A counting buffer (`position_ids = arange(max_len)[None]`, or zeros for token types) sliced to a
    symbolic length along `axis`, as an Iota; None when the buffer does not count or repeat."""
    if arr.dtype.kind not in "iu" or arr.ndim == 0 or arr.shape[axis] < 2:
        return None
    flat = np.moveaxis(arr, axis, -1).reshape(-1, arr.shape[axis])
    if not np.all(flat == flat[:1]):
        return None
    row = flat[0].astype(np.int64)
    step = int(row[1] - row[0])
    if not np.array_equal(row, row[0] + step * np.arange(row.size)):
        return None
    shape = list(arr.shape)
    shape[axis] = end  # type: ignore[call-overload]
    return counting(tuple(shape), axis, int(row[0]), step)


def _lookup(im: Any, node: Node, table: np.ndarray, ids: Iota) -> None:
    """Gather(table, ids) with counting ids: the table's rows start.. as a slice, laid out like the ids."""
    node.only("axis")
    if int(node.attr("axis", 0)) != 0 or table.ndim != 2:
        raise Unsupported("a lookup of position ids of symbolic length in something other than a table")
    p = im.const_tensor(table, node.inputs[0]).name
    if ids.axis is None:
        rows = im.temp(f"slice({p}, 0, {ids.start}, {ids.start + 1})", "row")
        count: Dim = 1
    else:
        length = ids.shape[ids.axis]
        if ids.step != 1 or ids.start != 0 or not isinstance(length, Sym):
            raise Unsupported("position ids that do not count from 0 in steps of 1")
        rows = im.temp(f"slice({p}, 0, 0, {im.dim_text(length)})", "rows")
        count = length
    lead = list(ids.shape)
    axis = ids.axis if ids.axis is not None else len(lead) - 1
    # rows is [count, D]; put its first axis where the ids count and size-1 axes elsewhere.
    cur = rows
    for _ in range(axis):
        cur = f"unsqueeze({cur}, 0)"
    for _ in range(len(lead) - axis - 1):
        cur = f"unsqueeze({cur}, {axis + 1})"
    wanted = [d if i != axis else count for i, d in enumerate(lead)] + [table.shape[1]]
    natural = [1] * axis + [count] + [1] * (len(lead) - axis - 1) + [table.shape[1]]
    if wanted != natural:
        cur = f"broadcast_to({cur}, [{', '.join(im.dim_text(d) for d in wanted)}])"
    im.emit(node.outputs[0], cur)


def gather_flat(im: Any, node: Node, flat: Tensor, idx: Iota) -> bool:
    """Gather(Flatten(X), b * T + t): X itself, its axes placed where the index counts them (how mask functions
    read a [N, T] attention mask). False when the index is not X's row-major offset."""
    source = im.flat_source.get(node.inputs[0])
    if source is None or int(node.attr("axis", 0)) != 0 or idx.start != 0:
        return False
    strides, acc = [], 1
    for d in reversed(source.shape):
        strides.insert(0, acc)
        acc = dim_mul(acc, d)
    place: dict[int, int] = {}
    terms = dict(idx.terms)
    for k, (d, stride) in enumerate(zip(source.shape, strides)):
        if d == 1:
            continue
        axis = next((a for a, c in terms.items() if c == stride and idx.shape[a] == d), None)
        if axis is None:
            return False
        place[k] = axis
        del terms[axis]
    if terms or dims_product(tuple(flat.shape[:1])) != acc:
        return False
    order = sorted(place, key=lambda k: place[k])
    x = source.name
    if order != sorted(order):
        perm = order + [k for k in range(len(source.shape)) if k not in order]
        x = im.temp(f"transpose({x}, perm={literal(perm)})", "gathered")
    target = list(idx.shape) + list(flat.shape[1:])
    im.emit(node.outputs[0], f"reshape({x}, [{', '.join(im.dim_text(d) for d in target)}])")
    return True
