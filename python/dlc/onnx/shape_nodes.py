"""Nodes whose inputs are shape values (ShapeVec, Iota) and constants, with no tensor: computed at import time
(symbolic.py, iota.py), or, where the result is a tensor of the model laid out along symbolic dimensions (a
ConstantOfShape, a constant Expand or Reshape, a buffer sliced to a symbolic length), converted by the op's
converter."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Sym
from .iota import iota_from_buffer, iota_node
from .ops_shape import slice_
from .registry import CONVERTERS
from .symbolic import Iota, Item, arithmetic, counting, int_vec, items_of
from .values import Node


def evaluate(im: Any, node: Node) -> Any:
    """The node's value, or None when a converter emitted it as a tensor."""
    ins = [im.get(n) if n else None for n in node.inputs]
    op = node.op
    if any(isinstance(v, Iota) for v in ins):
        return iota_node(im, node, ins)
    if op == "Slice" and isinstance(ins[0], np.ndarray) and (ins[0].ndim > 1 or ins[0].dtype.kind == "f"):
        return _slice_constant(im, node, ins)
    if op == "Expand" and isinstance(ins[0], np.ndarray) and ins[0].dtype.kind in "iu" and ins[0].size \
            and np.all(ins[0] == ins[0].reshape(-1)[0]):  # a repeated id (token types) along symbolic dims
        target, _ = items_of(ins[1], op)
        shape: list[Item] = list(ins[0].shape)
        r = max(len(shape), len(target))
        shape, target = [1] * (r - len(shape)) + shape, [1] * (r - len(target)) + target
        out = tuple(t if d == 1 else d for d, t in zip(shape, target))
        return counting(out, None, int(ins[0].reshape(-1)[0]))  # type: ignore[arg-type]
    if op in ("Expand", "Reshape") and isinstance(ins[0], np.ndarray) and (ins[0].ndim > 1 or ins[0].size > 1
                                                                             or ins[0].dtype.kind == "f"):
        CONVERTERS[op](im, node)  # a constant laid out along symbolic dimensions: a tensor of the model
        return None
    if op == "ConstantOfShape":
        CONVERTERS[op](im, node)
        return None
    return arithmetic(im, node, ins)


def _slice_constant(im: Any, node: Node, ins: list[Any]) -> Any:
    """A buffer sliced to a symbolic length: counting integers (`position_ids[:, :T]`) become an Iota, a
    float table a slice of the model's parameter."""
    arr = ins[0]
    ends = int_vec(im, node.inputs[2], "ends")
    starts = int_vec(im, node.inputs[1], "starts")
    axes = int_vec(im, node.inputs[3], "axes") if len(node.inputs) > 3 and node.inputs[3] else \
        list(range(len(starts)))
    symbolic = [(int(a) % arr.ndim, s, e) for a, s, e in zip(axes, starts, ends) if isinstance(e, Sym)]
    if arr.dtype.kind in "iu" and len(symbolic) == 1 and symbolic[0][1] == 0 and len(axes) == 1:
        iota = iota_from_buffer(arr, symbolic[0][0], symbolic[0][2])
        if iota is not None:
            return iota
    slice_(im, node)
    return None
