"""Shape and layout ops. Integer vectors computed from shapes (Shape -> Gather -> Concat ...) are followed as
`ShapeVec`s whose entries may be symbolic dimensions, so they fold into the attributes of reshape and friends
even when the batch size is symbolic."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Sym, dims_product
from ..ir import NUMPY_DTYPES
from .registry import converts
from .iota import gather_flat
from .symbolic import Iota, axes_of, int_vec, shape_value
from .values import Node, Tensor, Unsupported, literal


@converts("Shape")
def shape(im: Any, node: Node) -> None:
    v = im.get(node.inputs[0])
    dims = list(v.shape) if isinstance(v, np.ndarray) else list(im.tensor(node.inputs[0]).shape)
    im.set(node.outputs[0], shape_value(node, dims))


@converts("Size")
def size(im: Any, node: Node) -> None:
    node.only()
    im.set(node.outputs[0], np.array(int(np.prod(im.tensor(node.inputs[0]).static("Size"))), dtype=np.int64))


@converts("Reshape")
def reshape(im: Any, node: Node) -> None:
    node.only("allowzero", "shape")
    x = im.tensor(node.inputs[0])
    target = list(node.attr("shape")) if node.opset < 5 else int_vec(im, node.inputs[1], "Reshape's shape")
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 and x.shape is not None else d for i, d in enumerate(target)]
    if any(d == 0 for d in target):
        raise Unsupported("a zero-size dimension (dlc tensors are never empty)")
    if list(target) == list(x.shape):
        im.set(node.outputs[0], x)
        return
    _flat(im, node, im.emit(node.outputs[0], f"reshape({x.name}, {im.target_text(target)})"), x)


def _flat(im: Any, node: Node, out: Tensor, x: Tensor) -> None:
    """Remembers which tensor a [P] or [P, 1] flattening holds (see iota.gather_flat)."""
    if len(out.shape) in (1, 2) and out.shape[1:] in ((), (1,)) and out.shape[0] == dims_product(tuple(x.shape)):
        im.flat_source[node.outputs[0]] = x


@converts("Flatten")
def flatten(im: Any, node: Node) -> None:
    node.only("axis")
    x = im.tensor(node.inputs[0])
    axis = int(node.attr("axis", 1))
    axis = axis + x.rank if axis < 0 else axis
    shape = list(x.shape or ())
    lead, trail = shape[:axis], shape[axis:]
    if all(isinstance(d, int) for d in trail):
        target = f"[-1, {int(np.prod(trail))}]"
    elif all(isinstance(d, int) for d in lead):
        target = f"[{int(np.prod(lead))}, -1]"
    else:
        raise Unsupported("Flatten with symbolic dimensions on both sides of the axis")
    _flat(im, node, im.emit(node.outputs[0], f"reshape({x.name}, {target})"), x)


@converts("Transpose")
def transpose(im: Any, node: Node) -> None:
    node.only("perm")
    x = im.tensor(node.inputs[0])
    perm = [int(p) for p in node.attr("perm", list(range(x.rank))[::-1])]
    if perm == list(range(x.rank)):
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], f"transpose({x.name}, perm={literal(perm)})")


@converts("Concat")
def concat(im: Any, node: Node) -> None:
    node.only("axis")
    parts = [im.tensor(n) for n in node.inputs if n]
    axis = int(node.attr("axis")) % parts[0].rank
    if len(parts) == 1:
        im.set(node.outputs[0], parts[0])
        return
    im.emit(node.outputs[0], f"concat({', '.join(p.name for p in parts)}, axis={axis})")


@converts("Unsqueeze")
def unsqueeze(im: Any, node: Node) -> None:
    node.only("axes")
    x = im.tensor(node.inputs[0])
    axes = axes_of(im, node, 1, 13)
    if axes is None:
        raise Unsupported("Unsqueeze without axes")
    rank = x.rank + len(axes)
    cur = x.name
    for a in sorted(a % rank for a in axes):
        cur = f"unsqueeze({cur}, {a})"
    im.emit(node.outputs[0], cur)


@converts("Squeeze")
def squeeze(im: Any, node: Node) -> None:
    node.only("axes")
    x = im.tensor(node.inputs[0])
    axes = axes_of(im, node, 1, 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.static("Squeeze without axes")) if d == 1]
    if not axes:
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], f"squeeze({x.name}, {literal(sorted(a % x.rank for a in axes))})")


def _slice_expr(x: str, axis: int, dim: int | str, start: int, end: int, step: int) -> str:
    if isinstance(dim, int):
        start, stop, step = slice(start, end, step).indices(dim)
        if (stop - start) * step <= 0:
            raise Unsupported("an empty slice (dlc tensors are never empty)")
        end_text = "none" if step < 0 and stop < 0 else str(stop)
        return f"slice({x}, {axis}, {start}, {end_text}, {step})"
    big = 2 ** 40
    end_text = "none" if abs(end) >= big else str(end)
    return f"slice({x}, {axis}, {max(min(start, big), -big)}, {end_text}, {step})"


@converts("Slice")
def slice_(im: Any, node: Node) -> None:
    x = im.tensor(node.inputs[0])
    if node.opset < 10:
        node.only("starts", "ends", "axes")
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = list(node.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        node.only()
        starts = int_vec(im, node.inputs[1], "starts")
        ends = int_vec(im, node.inputs[2], "ends")
        axes = int_vec(im, node.inputs[3], "axes") if len(node.inputs) > 3 and node.inputs[3] \
            else list(range(len(starts)))
        steps = int_vec(im, node.inputs[4], "steps") if len(node.inputs) > 4 and node.inputs[4] else [1] * len(starts)
    if x.shape is None:
        raise Unsupported("the input's shape is unknown")
    cur = x.name
    for a, s, e, st in zip(axes, starts, ends, steps):
        a = int(a) % x.rank
        dim = x.shape[a]
        if isinstance(st, int) and st < 0:  # x[::-1] (torch.flip): the positions gathered
            if not all(isinstance(v, int) for v in (s, e, dim)):
                raise Unsupported("a Slice with a negative step over a symbolic axis")
            cur = take_at(im, im.typed(cur), a, np.arange(dim)[int(s):int(e):int(st)], "reversed").name
            continue
        if s == 0 and st == 1 and (e == dim or (isinstance(e, int) and e >= 2 ** 31 - 1)):
            continue  # the whole axis (`x[:, :x.shape[1]]`, or an end past any size)
        if isinstance(s, Sym) or isinstance(st, Sym):
            raise Unsupported("a Slice starting at a symbolic position")
        if isinstance(e, Sym):  # the first T entries of a longer axis
            if s != 0 or st != 1:
                raise Unsupported(f"a Slice to the symbolic end {e} from {s} in steps of {st}")
            cur = im.temp(f"slice({cur}, {a}, 0, {im.dim_text(e)})", "sliced")
            continue
        cur = im.temp(_slice_expr(cur, a, dim, int(s), int(e), int(st)), "sliced")
    if cur == x.name:
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], cur)


@converts("Gather")
def gather(im: Any, node: Node) -> None:
    node.only("axis")
    axis = int(node.attr("axis", 0))
    ids = im.get(node.inputs[1])
    if isinstance(ids, Iota):
        if not gather_flat(im, node, im.tensor(node.inputs[0]), ids):
            raise Unsupported("a Gather at computed indices other than the row-major offsets of a flattened tensor")
        return
    data_c = im.const(node.inputs[0])
    if data_c is not None and data_c.ndim == 2 and axis == 0 and data_c.dtype.kind == "f":
        ids = im.tensor(node.inputs[1])
        naming, layer = im.layer_call(node.inputs[0], node.proto.name or node.outputs[0])
        im.layer_param(layer, "weight", data_c)
        im.emit(node.outputs[0], f"embedding({ids.name}, {data_c.shape[0]}, {data_c.shape[1]}, {naming})")
        return
    x = im.tensor(node.inputs[0])
    axis %= x.rank
    idx = im.const(node.inputs[1])
    if idx is None or idx.ndim > 1:  # computed, or a table of indices: dlc's gather
        _gather_computed(im, node, x, axis)
        return
    dim = x.shape[axis]
    if not isinstance(dim, int):
        raise Unsupported("Gather along a symbolic axis")
    picks = [int(i) % dim for i in idx.reshape(-1)]
    parts = [im.temp(f"slice({x.name}, {axis}, {i}, {i + 1})", "picked") for i in picks]
    if idx.ndim == 0:
        im.emit(node.outputs[0], f"squeeze({parts[0]}, [{axis}])")
    else:
        im.emit(node.outputs[0], parts[0] if len(parts) == 1 else f"concat({', '.join(parts)}, axis={axis})")


def _gather_computed(im: Any, node: Node, x: Tensor, axis: int) -> None:
    """Gather at indices the graph computes, or a table of constant ones: dlc's gather, negative indices
    counted from the end as ONNX does (along a symbolic axis, where .dlm cannot add the length, a negative
    index is gather's IndexError when the model runs)."""
    ids = im.tensor(node.inputs[1])
    if ids.dtype not in ("i32", "i64"):
        raise Unsupported("Gather's indices are not integers")
    dim = x.shape[axis]
    if isinstance(dim, int):
        ids = im.typed(im.temp(f"where({ids.name} < 0, {ids.name} + {dim}, {ids.name})", "index"))
    im.emit(node.outputs[0], take(im, x, axis, ids))


def take(im: Any, x: Tensor, axis: int, ids: Tensor) -> str:
    """x's entries at `ids` (integers in range) along `axis`, as an expression: dlc's gather, which reads rows,
    with the axis moved to the front and the gathered axes moved back to its place."""
    rest = [a for a in range(x.rank) if a != axis]
    table = x.name if axis == 0 else im.temp(f"transpose({x.name}, perm={literal([axis] + rest)})", "table")
    got = f"gather({table}, {ids.name})"
    r = len(ids.shape)
    perm = list(range(r, r + axis)) + list(range(r)) + list(range(r + axis, r + len(rest)))
    return got if perm == sorted(perm) else f"transpose({im.temp(got, 'gathered')}, perm={literal(perm)})"


def take_at(im: Any, x: Tensor, axis: int, positions: np.ndarray, hint: str) -> Tensor:
    """x at constant positions along axis (a reversed or padded axis), as a new variable."""
    if positions.size == 0:
        raise Unsupported("an empty result (dlc tensors are never empty)")
    ids = im.const_tensor(positions.astype(np.int64), hint + "_positions")
    return im.typed(im.temp(take(im, x, axis, ids), hint))


@converts("Split")
def split(im: Any, node: Node) -> None:
    node.only("axis", "split", "num_outputs")
    x = im.tensor(node.inputs[0])
    axis = int(node.attr("axis", 0)) % x.rank
    dim = x.shape[axis]
    if not isinstance(dim, int):
        raise Unsupported("Split along a symbolic axis")
    n = len(node.outputs)
    sizes = node.attr("split") if node.opset < 13 else (
        [int(v) for v in im.need_const(node.inputs[1], "split").reshape(-1)]
        if len(node.inputs) > 1 and node.inputs[1] else None)
    if sizes is None:
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    start = 0
    for out, s in zip(node.outputs, sizes):
        if s <= 0:
            raise Unsupported("an empty split (dlc tensors are never empty)")
        if out:
            im.emit(out, f"slice({x.name}, {axis}, {start}, {start + int(s)})")
        start += int(s)


@converts("Expand")
def expand(im: Any, node: Node) -> None:
    node.only()
    x = im.tensor(node.inputs[0])
    target = int_vec(im, node.inputs[1], "Expand's shape")
    xs = list(x.shape or ())
    r = max(len(xs), len(target))
    xs = [1] * (r - len(xs)) + xs
    target = [1] * (r - len(target)) + target
    out = [t if d == 1 else d for d, t in zip(xs, target)]
    cur = x.name
    for _ in range(r - x.rank):
        cur = f"unsqueeze({cur}, 0)"
    if out == xs:
        im.emit(node.outputs[0], cur)
    else:
        im.emit(node.outputs[0], f"broadcast_to({cur}, [{', '.join(im.dim_text(d) for d in out)}])")


@converts("ConstantOfShape")
def constant_of_shape(im: Any, node: Node) -> None:
    """A filled tensor of a computed shape (`zeros(layers, x.shape[0], hidden)` for an initial state): `full`,
    a constant of the model, never a parameter."""
    from onnx import numpy_helper
    node.only("value")
    value = node.attr("value")
    fill = numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    dims = int_vec(im, node.inputs[0], "ConstantOfShape's shape")
    if any(d == 0 for d in dims):
        raise Unsupported("a zero-size dimension (dlc tensors are never empty)")
    from .values import dlc_dtype
    dtype = dlc_dtype(fill.dtype)
    number = literal(float(fill[0]) if dtype in ("f32", "f64") else int(fill[0]))
    im.emit(node.outputs[0], f"full([{', '.join(im.dim_text(d) for d in dims)}], value={number}, dtype=\"{dtype}\")")


@converts("Tile")
def tile(im: Any, node: Node) -> None:
    node.only()
    x = im.tensor(node.inputs[0])
    reps = [int(v) for v in im.need_const(node.inputs[1], "Tile's repeats").reshape(-1)]
    cur = x.name
    for axis, n in enumerate(reps):
        if n < 1:
            raise Unsupported("zero repeats (dlc tensors are never empty)")
        if n > 1:
            cur = im.temp(f"concat({', '.join([cur] * n)}, axis={axis})", "tiled")
    im.emit(node.outputs[0], cur)


@converts("DepthToSpace", "SpaceToDepth")
def depth_space(im: Any, node: Node) -> None:
    """Channel/space rearrangements as reshape -> transpose -> reshape (ONNX's own definition)."""
    node.only("blocksize", "mode")
    x = im.tensor(node.inputs[0])
    n, c, h, w = x.static(node.op)
    bs = int(node.attr("blocksize"))
    if node.op == "DepthToSpace":
        if node.attr("mode", "DCR") == "DCR":
            first, perm = [n, bs, bs, c // bs ** 2, h, w], [0, 3, 4, 1, 5, 2]
        else:
            first, perm = [n, c // bs ** 2, bs, bs, h, w], [0, 1, 4, 2, 5, 3]
        last = [n, c // bs ** 2, h * bs, w * bs]
    else:
        if node.attr("mode", "DCR") != "DCR":
            raise Unsupported(f"SpaceToDepth with mode={node.attr('mode')!r}")
        first, perm = [n, c, h // bs, bs, w // bs, bs], [0, 3, 5, 1, 2, 4]
        last = [n, c * bs * bs, h // bs, w // bs]
    step = im.temp(f"transpose(reshape({x.name}, {literal(first)}), perm={literal(perm)})", "rearranged")
    im.emit(node.outputs[0], f"reshape({step}, {literal(last)})")


@converts("Trilu")
def trilu(im: Any, node: Node) -> None:
    """The lower (upper) triangle from diagonal k of the last two axes: a product with 0/1 for floats, a where()
    for the other dtypes. The 0/1 triangle is a constant when those axes are static, else dlc's `triangle`,
    built when the plan runs (GPT-2's causal mask is a Trilu over [T, T])."""
    node.only("upper")
    x = im.tensor(node.inputs[0])
    if x.rank < 2:
        raise Unsupported("Trilu of a tensor of rank < 2")
    k = int(im.need_const(node.inputs[1], "Trilu's k").reshape(())) if len(node.inputs) > 1 and node.inputs[1] \
        else 0
    upper = bool(node.attr("upper", 1))
    rows, cols = x.shape[-2:]
    kind = x.dtype if x.dtype in ("f32", "f64") else "bool"
    if isinstance(rows, int) and isinstance(cols, int):
        ones = np.ones((rows, cols), dtype=bool)
        keep = np.triu(ones, k) if upper else np.tril(ones, k)
        if np.all(keep):
            im.set(node.outputs[0], x)
            return
        mask = im.const_tensor(keep.astype(NUMPY_DTYPES[kind]), node.outputs[0] + "_keep").name
    else:
        mask = im.temp(f"triangle([{im.dim_text(rows)}, {im.dim_text(cols)}], k={k}, "
                       f"upper={'true' if upper else 'false'}, dtype=\"{kind}\")", node.outputs[0] + "_keep")
    if kind != "bool":
        im.emit(node.outputs[0], f"{x.name} * {mask}")
    elif x.dtype != "bool":
        im.emit(node.outputs[0], f"where({mask}, {x.name}, {x.name} * 0)")
    else:  # x and mask; where() wants the mask at x's shape
        if x.rank > 2:
            mask = im.temp(f"broadcast_to({mask}, [{', '.join(im.dim_text(d) for d in x.shape)}])", "keep")
        im.emit(node.outputs[0], f"where({mask}, {x.name}, {mask})")
