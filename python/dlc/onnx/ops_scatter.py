"""GatherND and ScatterND: index tuples into the leading axes of a tensor, read or written as rows of the
tensor with those axes flattened (dlc's `gather` and `scatter_add`). ScatterND is what dlc writes for
`scatter_add` (reduction="add" onto zeros), so graph networks come back; reduction "none" replaces the rows
it reaches. Index tuples that transformers' mask functions build from ids (`mask[batch_idx, kv_idx]`) are the
tensor itself, laid out along the ids' axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, dims_product
from .registry import converts
from .symbolic import IotaStack
from .values import Node, Tensor, Unsupported, literal


def _flat_index(im: Any, name: str, lead: tuple[Dim, ...]) -> str:
    """The row of the flattened leading axes each index tuple picks ([..., K] -> [...]), negative entries
    counting from the end (along a static axis)."""
    if len(lead) > 1 and not all(isinstance(d, int) for d in lead):
        raise Unsupported("index tuples into symbolic axes (their strides are not known)")
    c = im.const(name)
    if c is not None:
        if c.dtype.kind not in "iu":
            raise Unsupported("indices that are not integers")
        sizes = np.array([int(d) for d in lead], dtype=np.int64) if all(isinstance(d, int) for d in lead) \
            else None
        idx = c.astype(np.int64)
        if sizes is not None:
            if np.any(idx < -sizes) or np.any(idx >= sizes):
                raise Unsupported("an index outside the axis it indexes")
            idx = np.where(idx < 0, idx + sizes, idx)
            flat = np.ravel_multi_index(np.moveaxis(idx, -1, 0), tuple(sizes)) if idx.shape[-1] else \
                np.zeros(idx.shape[:-1], np.int64)
        else:  # one symbolic axis: its index is the row
            flat = idx[..., 0]
        if flat.ndim == 0:
            flat = flat.reshape(1)
        return im.const_tensor(np.asarray(flat, dtype=np.int64), name + "_rows").name
    t = im.tensor(name)
    if t.dtype not in ("i32", "i64") or t.shape is None:
        raise Unsupported("indices that are not integers")
    rank = len(t.shape)
    flat = ""
    for k, size in enumerate(lead):
        part = im.temp(f"squeeze(slice({t.name}, {rank - 1}, {k}, {k + 1}), {rank - 1})", "index")
        if isinstance(size, int):  # .dlm cannot add a symbolic length: there a negative index is an IndexError
            part = im.temp(f"where({part} < 0, {part} + {size}, {part})", "index")
        stride = dims_product(tuple(lead[k + 1:]))
        term = part if stride == 1 else f"{part} * {int(stride)}"  # type: ignore[arg-type]
        flat = term if not flat else f"{flat} + {term}"
    return flat if len(lead) == 1 else im.temp(flat, "rows")


def _rows(im: Any, x: Tensor, k: int) -> tuple[str, Dim]:
    """x with its first k axes flattened into rows, and the number of rows."""
    rows = dims_product(tuple(x.shape[:k]))
    if k == 1:
        return x.name, rows
    return im.temp(f"reshape({x.name}, {im.target_text([rows] + list(x.shape[k:]))})", "rows"), rows


def _depth(im: Any, name: str) -> int:
    t = im.get(name)
    depth = t.shape[-1] if t.shape else None
    if not isinstance(depth, int) or depth < 1:
        raise Unsupported("index tuples of unknown or zero length")
    return depth


@converts("GatherND")
def gather_nd(im: Any, node: Node) -> None:
    node.only("batch_dims")
    if int(node.attr("batch_dims", 0)):
        raise Unsupported("GatherND with batch_dims")
    data = im.tensor(node.inputs[0])
    idx = im.get(node.inputs[1])
    if isinstance(idx, IotaStack):
        _gather_layout(im, node, data, idx)
        return
    k = _depth(im, node.inputs[1])
    if k > data.rank:
        raise Unsupported("index tuples longer than the data's rank")
    flat = _flat_index(im, node.inputs[1], tuple(data.shape[:k]))
    table, _ = _rows(im, data, k)
    out_shape = list(im.get(node.inputs[1]).shape[:-1]) + list(data.shape[k:])
    got = im.temp(f"gather({table}, {flat})", "gathered")
    im.emit(node.outputs[0], got if list(im.typed(got).shape) == out_shape
            else f"reshape({got}, {im.target_text(out_shape)})")


def _gather_layout(im: Any, node: Node, data: Tensor, idx: IotaStack) -> None:
    """data[i0, i1, ...] with entry k counting 0.. along its own axis a_k: data's axis k placed at a_k."""
    shape = idx.parts[0].shape
    place: list[int] = []
    for k, part in enumerate(idx.parts):
        terms = dict(part.terms)
        if part.start != 0 or len(terms) > 1 or (terms and list(terms.values()) != [1]):
            raise Unsupported("GatherND at index tuples other than ids counting each axis from 0")
        if not terms:
            if data.shape[k] != 1:
                raise Unsupported("GatherND at a fixed index of an axis longer than 1")
            place.append(-1)
            continue
        axis = next(iter(terms))
        if shape[axis] != data.shape[k] or axis in place:
            raise Unsupported("GatherND at ids that do not cover the axis they index")
        place.append(axis)
    order = sorted((a, k) for k, a in enumerate(place) if a >= 0)
    moved = [k for _, k in order]
    rest = list(range(len(idx.parts), data.rank))
    x = data.name
    perm = moved + [k for k in range(len(idx.parts)) if place[k] < 0] + rest
    if perm != sorted(perm):
        x = im.temp(f"transpose({x}, perm={literal(perm)})", "gathered")
    target = [data.shape[place.index(a)] if a in place else 1 for a in range(len(shape))] + \
        [data.shape[k] for k in rest]
    x = im.temp(f"reshape({x}, [{', '.join(im.dim_text(d) for d in target)}])", "gathered")
    full = list(shape) + [data.shape[k] for k in rest]
    im.emit(node.outputs[0], x if full == target else
            f"broadcast_to({x}, [{', '.join(im.dim_text(d) for d in full)}])")


def _zeros(im: Any, name: str) -> bool:
    """Whether a tensor is known to be all zeros (a constant, or a ConstantOfShape of 0)."""
    c = im.const(name)
    if c is not None:
        return c.size > 0 and not np.any(c)
    proto = im.producers.get(name)
    if proto is None or proto.op_type != "ConstantOfShape":
        return False
    from onnx import numpy_helper
    value = next((numpy_helper.to_array(a.t) for a in proto.attribute if a.name == "value"), np.zeros(1))
    return not np.any(value)


@converts("ScatterND")
def scatter_nd(im: Any, node: Node) -> None:
    node.only("reduction")
    reduction = node.attr("reduction", "none")
    if reduction not in ("none", "add"):
        raise Unsupported(f"ScatterND with reduction={reduction!r} (dlc sums rows: 'none' and 'add' import)")
    data, updates = im.tensor(node.inputs[0]), im.tensor(node.inputs[2])
    if data.dtype not in ("f32", "f64"):
        raise Unsupported(f"ScatterND into {data.dtype} (dlc's scatter_add sums f32 or f64 rows)")
    k = _depth(im, node.inputs[1])
    if k > data.rank:
        raise Unsupported("index tuples longer than the data's rank")
    flat = _flat_index(im, node.inputs[1], tuple(data.shape[:k]))
    table, rows = _rows(im, data, k)
    rest = list(data.shape[k:])
    src = updates.name
    wanted = list(im.typed(flat).shape) + rest
    if list(updates.shape) != wanted:
        src = im.temp(f"reshape({src}, {im.target_text(wanted)})", "updates")
    summed = f"scatter_add({src}, {flat}, {im.dim_text(rows)})"
    if _zeros(im, node.inputs[0]):
        out = summed
    elif reduction == "add":
        out = f"{table} + {summed}"
    else:  # the rows an index reaches are replaced (ONNX leaves repeated indices undefined; they sum here)
        each = ", ".join(im.dim_text(d) for d in im.typed(flat).shape)
        hits = im.temp(f"scatter_add(full([{each}], value=1.0, "
                       f"dtype=\"{data.dtype}\"), {flat}, {im.dim_text(rows)})", "hits")
        keep = f"reshape({hits} == 0.0, [{im.dim_text(rows)}{', 1' * len(rest)}])"
        out = f"where({keep}, {table}, {summed})"
    im.emit(node.outputs[0], out if k == 1 else f"reshape({im.temp(out, 'scattered')}, "
                                                f"{im.target_text(list(data.shape))})")
