"""Counting integer tensors of symbolic length (`Iota`): position ids built with Range over the sequence length,
or sliced from a `position_ids` buffer, then reshaped, expanded and looked up in an embedding table.

dlc has no integer tensor of a symbolic length, but it needs none: the lookup of rows start, start + 1, ...
of a table is the table's first rows, `slice(table, 0, 0, T)`, and a lookup of one repeated id is that row
broadcast. The layout ops on the way (Unsqueeze, Squeeze, Reshape to the same numbers, Expand, Slice along
the counting axis, Add of a constant, integer Casts) are followed here at import time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, Sym
from .symbolic import Iota, axes_of, int_vec, items_of, pack
from .values import Node, Unsupported, literal


def iota_node(im: Any, node: Node, ins: list[Any]) -> Any:
    op = node.op
    x = ins[0]
    if op == "Gather" and isinstance(ins[1], Iota) and isinstance(x, np.ndarray):
        return _lookup(im, node, x, ins[1])
    if op in ("GatherElements", "Gather") and isinstance(ins[1], Iota) and _uniform(x) is not None:
        return Iota(ins[1].shape if op == "GatherElements" else _gathered_shape(node, x, ins[1]), None,
                    _uniform(x))  # type: ignore[arg-type]
    if op == "Where" and isinstance(x, Iota) and x.axis is None:
        chosen = ins[1] if x.start else ins[2]
        shapes = [v.shape for v in ins]
        shape = _broadcast_shape(_broadcast_shape(shapes[0], shapes[1]), shapes[2])
        value = _uniform(chosen) if not isinstance(chosen, np.ndarray) or chosen.dtype.kind != "f" else None
        if value is not None:
            return Iota(shape, None, value, 1, chosen.dtype if isinstance(chosen, Iota) else "i64")
        if isinstance(chosen, np.ndarray) and chosen.size and np.all(chosen == chosen.reshape(-1)[0]):
            from .values import dlc_dtype
            im.emit(node.outputs[0], f"full([{', '.join(im.dim_text(d) for d in shape)}], "
                                     f"value={literal(float(chosen.reshape(-1)[0]))}, "
                                     f"dtype=\"{dlc_dtype(chosen.dtype)}\")")
            return None
        raise Unsupported("Where choosing between non-uniform values along symbolic dimensions")
    if not isinstance(x, Iota):
        if op in ("Add", "Sub") and isinstance(ins[1], Iota) and op == "Add":
            return _shifted(ins[1], x)
        raise Unsupported(f"{op} with position ids of symbolic length as its second input")
    if op == "Shape":
        node.only()
        return pack(list(x.shape), False)
    if op in ("Cast", "Identity"):
        to = {6: "i32", 7: "i64", 9: "bool"}.get(int(node.attr("to", 7)))
        if op == "Cast" and (to is None or (to == "bool" and x.axis is not None)):
            raise Unsupported("a cast of position ids of symbolic length to a non-integer type")
        return Iota(x.shape, x.axis, int(bool(x.start)) if to == "bool" else x.start, x.step, to or x.dtype)
    if op in _COMPARE and isinstance(ins[1], np.ndarray) and ins[1].size == 1:
        return _compare(x, op, int(ins[1].reshape(())))
    if op in ("And", "Or") and all(isinstance(v, Iota) and v.axis is None for v in ins):
        a, b = ins
        value = (a.start and b.start) if op == "And" else (a.start or b.start)
        return Iota(_broadcast_shape(a.shape, b.shape), None, int(bool(value)), 1, "bool")
    if op == "Unsqueeze":
        axes = axes_of(im, node, 1, 13) or []
        shape = list(x.shape)
        axis = x.axis
        rank = len(shape) + len(axes)
        for a in sorted(a % rank for a in axes):
            shape.insert(a, 1)
            if axis is not None and a <= axis:
                axis += 1
        return Iota(tuple(shape), axis, x.start, x.step)
    if op == "Squeeze":
        axes = axes_of(im, node, 1, 13)
        keep = [i for i, d in enumerate(x.shape) if (axes is None and d != 1) or
                (axes is not None and i not in {a % len(x.shape) for a in axes})]
        return _select(x, keep)
    if op in ("Add", "Sub"):
        return _shifted(x, ins[1], -1 if op == "Sub" else 1)
    if op == "Expand":
        target, _ = items_of(ins[1], "Expand")
        shape = list(x.shape)
        r = max(len(shape), len(target))
        shape = [1] * (r - len(shape)) + shape
        target = [1] * (r - len(target)) + target
        axis = None if x.axis is None else x.axis + r - len(x.shape)
        out = [t if d == 1 else d for d, t in zip(shape, target)]
        return Iota(tuple(out), axis, x.start, x.step)  # type: ignore[arg-type]
    if op == "Reshape":
        target, _ = items_of(ins[1], "Reshape")
        kept = [d for d in x.shape if d != 1]
        if [d for d in target if d != 1] == kept and -1 not in target and 0 not in target:
            axis = None if x.axis is None else [i for i, d in enumerate(target) if d != 1][
                [i for i, d in enumerate(x.shape) if d != 1].index(x.axis)]
            return Iota(tuple(target), axis, x.start, x.step)  # type: ignore[arg-type]
        raise Unsupported("a Reshape of position ids of symbolic length that moves their entries")
    if op == "Slice":
        return _slice(im, node, x)
    raise Unsupported(f"{op} of position ids of symbolic length")


_COMPARE = ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")


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
    return Iota(x.shape, None, int(always), 1, "bool")


def _broadcast_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
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
    if isinstance(x, Iota) and x.axis is None:
        return x.start
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.size and np.all(x == x.reshape(-1)[0]):
        return int(x.reshape(-1)[0])
    return None


def _gathered_shape(node: Node, x: Any, idx: Iota) -> tuple[Dim, ...]:
    axis = int(node.attr("axis", 0)) % len(x.shape)
    return tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:])


def _select(x: Iota, keep: list[int]) -> Iota:
    axis = None if x.axis is None or x.axis not in keep else keep.index(x.axis)
    if x.axis is not None and x.axis not in keep:
        raise Unsupported("Squeeze of the counting axis of position ids")
    return Iota(tuple(x.shape[i] for i in keep), axis, x.start, x.step)


def _shifted(x: Iota, c: Any, sign: int = 1) -> Iota:
    if not isinstance(c, np.ndarray) or c.size != 1 or c.dtype.kind not in "iu":
        raise Unsupported("arithmetic on position ids other than adding an integer")
    return Iota(x.shape, x.axis, x.start + sign * int(c.reshape(())), x.step)


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
    return Iota(tuple(shape), x.axis, start, x.step)


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
    return Iota(tuple(shape), None if step == 0 else axis, int(row[0]), step)


def _lookup(im: Any, node: Node, table: np.ndarray, ids: Iota) -> None:
    """Gather(table, ids) with counting ids: the table's rows start.. as a slice, laid out like the ids."""
    node.only("axis")
    if int(node.attr("axis", 0)) != 0 or table.ndim != 2 or table.dtype.kind != "f":
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
    lead = [d for d in ids.shape]
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
        cur = f"broadcast_to({cur}, {literal_dims(im, wanted)})"
    im.emit(node.outputs[0], cur)


def literal_dims(im: Any, dims: list[Dim]) -> str:
    return "[" + ", ".join(im.dim_text(d) for d in dims) + "]"


__all__ = ["iota_node", "iota_from_buffer", "literal"]
