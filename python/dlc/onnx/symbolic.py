"""Shape arithmetic at import time, over symbolic dimensions.

Exporters write the integer arithmetic of `x.reshape(B, 2, d // 2)` or `cls.expand(x.shape[0], -1, -1)` into
the graph: Shape -> Gather -> Div -> Unsqueeze -> Concat -> Reshape. Here those nodes are computed once, on
`ShapeVec`s whose entries are integers or `Sym` monomials of the model's dimensions (N, 2*N, N*T), so the
result folds into the attribute of the op that reads it (`reshape(x, [N, 2, 16])`) and N stays symbolic.
Only what is exactly known is computed: `N + 1`, `N // 2` or `N == 3` are refused with the reason.
`Range(0, T)` with a symbolic T is an `Iota`: an integer tensor known up to its symbolic length (position ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..dims import Dim, Sym, dim_div, dim_mul
from .values import Node, ShapeVec, Tensor, Unsupported

Item = int | bool | Sym


@dataclass(frozen=True)
class Iota:
    """An integer tensor known up to its symbolic shape: start + the sum over `terms` of coefficient times the
    index along that axis. One term counts along one axis (position ids `arange(T)[None]`); none is a tensor
    filled with `start` (token type ids, boolean masks that hold everywhere); two make the flat index
    `b * T + t` that mask functions gather a [N, T] mask with."""

    shape: tuple[Dim, ...]
    terms: tuple[tuple[int, Dim], ...]
    start: int = 0
    dtype: str = "i64"

    @property
    def axis(self) -> int | None:
        """The counting axis of a single-term Iota (None for a filled one)."""
        if not self.terms:
            return None
        if len(self.terms) > 1 or isinstance(self.terms[0][1], Sym):
            raise Unsupported("indices counting along several axes where position ids are expected")
        return self.terms[0][0]

    @property
    def step(self) -> int:
        return int(self.terms[0][1]) if self.terms else 0  # type: ignore[arg-type]


@dataclass(frozen=True)
class IotaStack:
    """Index tuples whose k-th entry is `parts[k]` (ids concatenated along a new last axis): the indices of a
    GatherND in transformers' mask functions, `mask[batch_idx, kv_idx]`."""

    parts: tuple[Iota, ...]

    @property
    def shape(self) -> tuple[Dim, ...]:
        return tuple(self.parts[0].shape) + (len(self.parts),)


def counting(shape: tuple[Dim, ...], axis: int | None, start: int, step: Dim = 1, dtype: str = "i64") -> Iota:
    """An Iota counting along one axis (or filled with `start` when axis is None or the step is 0)."""
    return Iota(tuple(shape), () if axis is None or step == 0 else ((axis, step),), start, dtype)


def shape_value(node: Node, dims: list[Any]) -> Any:
    """Shape's output for a tensor of these dimensions, with opset 15's start and end."""
    node.only("start", "end")
    end = node.attr("end")
    return pack(dims[slice(int(node.attr("start", 0)), None if end is None else int(end))], False)


def int_vec(im: Any, name: str, what: str) -> list[int | str]:
    """A constant or symbolic integer vector input (a shape, axes, indices)."""
    v = im.get(name)
    if isinstance(v, ShapeVec):
        return list(v.items)
    if isinstance(v, np.ndarray):
        return [int(x) for x in v.reshape(-1)]
    raise Unsupported(f"{what} must be known when the model is imported (it is computed from tensor values)")


def axes_of(im: Any, node: Node, index: int, attr_until: int) -> list[int] | None:
    """Axes given as an attribute (opsets before `attr_until`) or as an optional constant input."""
    if node.opset < attr_until:
        a = node.attr("axes")
        return None if a is None else [int(v) for v in a]
    if len(node.inputs) > index and node.inputs[index]:
        return [int(v) for v in im.need_const(node.inputs[index], "axes").reshape(-1)]
    return None


def symbolic_inputs(ins: list[Any]) -> bool:
    return any(isinstance(v, (ShapeVec, Iota)) for v in ins) and not any(isinstance(v, Tensor) for v in ins)


def items_of(v: Any, what: str) -> tuple[list[Item], bool]:
    """A ShapeVec or a small integer array as a list of entries and whether it is a scalar."""
    if isinstance(v, ShapeVec):
        return list(v.items), v.scalar
    if isinstance(v, np.ndarray) and v.ndim <= 1 and v.dtype.kind in "iub":
        return [x.item() for x in v.reshape(-1)], v.ndim == 0
    raise Unsupported(f"{what} of symbolic dimensions with a tensor of shape "
                      f"{list(v.shape) if isinstance(v, np.ndarray) else '?'}")


def pack(items: list[Item], scalar: bool, dtype: Any = np.int64) -> ShapeVec | np.ndarray:
    """Entries back to a value: an array when every entry is known, else a ShapeVec."""
    if all(not isinstance(x, Sym) for x in items):
        arr = np.array(items, dtype=dtype)
        return arr.reshape(()) if scalar else arr
    return ShapeVec(tuple(items), scalar=scalar)


def _is_sym(x: Item) -> bool:
    return isinstance(x, Sym)


def _add(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        return int(a) + int(b)
    if b == 0:
        return a
    if a == 0:
        return b
    raise Unsupported(f"the sum {a} + {b} of a symbolic dimension (dlc dimensions are products of symbols)")


def _sub(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        return int(a) - int(b)
    if b == 0:
        return a
    if a == b:
        return 0
    raise Unsupported(f"the difference {a} - {b} of a symbolic dimension")


def _div(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        if int(b) == 0:
            raise Unsupported("an integer division by zero")
        return int(np.trunc(int(a) / int(b))) if abs(int(a)) < 2 ** 52 else int(a) // int(b)
    q = dim_div(a, b)  # type: ignore[arg-type]
    if q is None:
        raise Unsupported(f"the quotient {a} / {b} is not a whole multiple of the dimensions")
    return q


def _mod(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        return int(np.fmod(int(a), int(b))) if int(b) else 0
    if not _is_sym(b) and _is_sym(a) and a.coeff % int(b) == 0:  # type: ignore[union-attr]
        return 0
    raise Unsupported(f"{a} mod {b} of a symbolic dimension")


def _compare(op: str) -> Callable[[Item, Item], bool]:
    """Comparisons decided without binding: a symbol equals itself and is at least 1."""
    def cmp(a: Item, b: Item) -> bool:
        if not _is_sym(a) and not _is_sym(b):
            return {"Equal": a == b, "Less": a < b, "Greater": a > b, "LessOrEqual": a <= b,
                    "GreaterOrEqual": a >= b}[op]
        if a == b:
            return op in ("Equal", "LessOrEqual", "GreaterOrEqual")
        sym_left = _is_sym(a)
        other = b if sym_left else a
        if not _is_sym(other) and int(other) < 1:  # a symbol (>= 1) against 0 or a negative number
            sym_greater = True
            return {"Equal": False, "Less": not sym_greater if sym_left else sym_greater,
                    "Greater": sym_greater if sym_left else not sym_greater,
                    "LessOrEqual": not sym_left, "GreaterOrEqual": sym_left}[op]
        raise Unsupported(f"{op} of {a} and {b} depends on the value of a symbolic dimension")
    return cmp


def _max(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        return max(a, b)
    if a == b:
        return a
    other = b if _is_sym(a) else a
    if not _is_sym(other) and int(other) <= 1:
        return a if _is_sym(a) else b
    raise Unsupported(f"Max of {a} and {b} depends on the value of a symbolic dimension")


def _min(a: Item, b: Item) -> Item:
    if not _is_sym(a) and not _is_sym(b):
        return min(a, b)
    if a == b:
        return a
    other = b if _is_sym(a) else a
    if not _is_sym(other) and int(other) <= 1:
        return other
    if not _is_sym(other) and int(other) >= 2 ** 31 - 1:  # Slice's "to the end" sentinels
        return a if _is_sym(a) else b
    raise Unsupported(f"Min of {a} and {b} depends on the value of a symbolic dimension")


_BINARY: dict[str, Callable[[Item, Item], Item]] = {
    "Add": _add, "Sub": _sub, "Mul": lambda a, b: dim_mul(a, b) if _is_sym(a) or _is_sym(b) else int(a) * int(b),
    "Div": _div, "Mod": _mod, "Max": _max, "Min": _min,
    **{op: _compare(op) for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")}}


def _broadcast(a: list[Item], b: list[Item]) -> tuple[list[Item], list[Item]]:
    if len(a) == len(b):
        return a, b
    if len(a) == 1:
        return a * len(b), b
    if len(b) == 1:
        return a, b * len(a)
    raise Unsupported(f"vectors of {len(a)} and {len(b)} entries do not broadcast")


def arithmetic(im: Any, node: Node, ins: list[Any]) -> Any:
    """The value of a node whose inputs are ShapeVecs and small integer constants."""
    op = node.op
    if op in _BINARY or op == "Pow":
        if op == "Pow":
            raise Unsupported("Pow of symbolic dimensions")
        (a, sa), (b, sb) = items_of(ins[0], op), items_of(ins[1], op)
        a, b = _broadcast(a, b)
        out = [_BINARY[op](x, y) for x, y in zip(a, b)]
        return pack(out, sa and sb, bool if op in ("Equal", "Less", "Greater", "LessOrEqual",
                                                  "GreaterOrEqual") else np.int64)
    if op in ("Floor", "Ceil", "Identity", "Cast", "Abs"):
        items, scalar = items_of(ins[0], op)
        if op == "Cast" and int(node.attr("to")) in (1, 10, 11):  # to float: kept as the same numbers
            return ShapeVec(tuple(items), scalar)
        return pack(items, scalar, bool if op == "Cast" and int(node.attr("to")) == 9 else np.int64)
    if op == "Neg":
        items, scalar = items_of(ins[0], op)
        return pack([_sub(0, x) for x in items], scalar)
    if op == "Not":
        raise Unsupported("Not of symbolic comparisons")
    if op == "Where":
        (c, _), (a, sa), (b, sb) = (items_of(v, op) for v in ins)
        c, a = _broadcast(c, a)
        c, b = _broadcast(c, b)
        a, b = _broadcast(a, b)
        return pack([x if bool(k) else y for k, x, y in zip(c, a, b)], sa and sb)
    if op in ("Gather", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Slice"):
        return _layout(im, node, ins)
    if op in ("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin"):
        items, _ = items_of(ins[0], op)
        fn = {"ReduceProd": lambda x, y: _BINARY["Mul"](x, y), "ReduceSum": _add, "ReduceMax": _max,
              "ReduceMin": _min}[op]
        acc = items[0]
        for x in items[1:]:
            acc = fn(acc, x)
        return pack([acc], not node.attr("keepdims", 1))
    if op == "Range":
        return _range(ins)
    if op == "Shape":
        items, scalar = items_of(ins[0], op)
        return np.array([] if scalar else [len(items)], np.int64)
    raise Unsupported(f"{op} of symbolic dimensions")


def _layout(im: Any, node: Node, ins: list[Any]) -> Any:
    op = node.op
    items, scalar = items_of(ins[0], op)
    if op == "Gather":
        idx = im.need_const(node.inputs[1], "the indices")
        picked = [items[int(i)] for i in idx.reshape(-1)]
        return pack(picked, idx.ndim == 0)
    if op == "Concat":
        out: list[Item] = []
        for v in ins:
            out += items_of(v, op)[0]
        return pack(out, False)
    if op == "Unsqueeze":
        if not scalar:
            raise Unsupported("Unsqueeze of a shape vector to a matrix")
        return pack(items, False)
    if op == "Squeeze":
        if len(items) != 1:
            raise Unsupported("Squeeze of a shape vector")
        return pack(items, True)
    if op in ("Reshape", "Flatten"):
        return pack(items, False)
    if node.opset < 10:
        starts, ends, steps = list(node.attr("starts")), list(node.attr("ends")), [1]
    else:
        starts = int_vec(im, node.inputs[1], "starts")
        ends = int_vec(im, node.inputs[2], "ends")
        steps = int_vec(im, node.inputs[4], "steps") if len(node.inputs) > 4 and node.inputs[4] else [1]
    if any(isinstance(v, Sym) for v in (starts[0], ends[0], steps[0])):
        raise Unsupported("Slice of a shape vector at symbolic positions")
    end = int(min(int(ends[0]), 2 ** 31))
    return pack(items[slice(int(starts[0]), end, int(steps[0]))], False)


def _range(ins: list[Any]) -> Any:
    (start,), (limit,), (delta,) = (items_of(v, "Range")[0] for v in ins)
    if isinstance(start, Sym) or isinstance(delta, Sym) or int(delta) == 0:
        raise Unsupported("Range with a symbolic start or step")
    length = _div(_sub(limit, start), delta)
    if not isinstance(length, Sym):  # unreachable: a known range is folded
        raise Unsupported("Range")
    return counting((length,), 0, int(start), int(delta))

