"""The decomposed attention exporters write, recognized as dlc's `attention` / `masked_attention`:

    MatMul(q, kT) [-> Mul/Div by a constant] [-> Add mask] -> Softmax(last axis) [-> Where(IsNaN(p), 0, p)]
        -> MatMul(p, v)

q and kT may each be scaled by a constant first (PyTorch's scaled_dot_product_attention scales both by
d^-1/4); the scales multiply into `scale=`. A mask is taken only when its values are known to be 0 or -inf:
a constant (a lower-triangular one is `causal=true`), or a tensor computed from a Where between those two
constants through layout ops. It becomes the boolean `mask == 0` ("may attend"). Anything else keeps the
decomposition, which computes the same values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .values import Node, Tensor, literal

_LAYOUT = ("Reshape", "Expand", "Unsqueeze", "Squeeze", "Cast", "Identity", "Transpose", "Concat", "Slice")


def _const(im: Any, name: str) -> Any:
    """A constant, converting its Constant node first when the walk has not reached it yet."""
    proto = im.producers.get(name)
    if proto is not None and proto.op_type == "Constant":
        im.convert_early(name, set())
    return im.const(name)


def _scalar(im: Any, name: str) -> float | None:
    c = _const(im, name)
    return float(c.reshape(())) if c is not None and c.size == 1 and c.dtype.kind == "f" else None


def _step(im: Any, name: str, ops: tuple[str, ...]) -> Any | None:
    """The only node reading `name`, when it is one of `ops` (and `name` is not a graph output)."""
    for op in ops:
        proto = im.sole_consumer(name, op)
        if proto is not None:
            return proto
    return None


def _prescaled(im: Any, name: str) -> tuple[str, float, Any | None]:
    """q or kT, looking through a Mul by a constant that only the attention reads."""
    proto = im.producers.get(name)
    if proto is not None and proto.op_type == "Mul" and len(im.readers.get(name, [])) == 1:
        for a, b in ((0, 1), (1, 0)):
            c = _scalar(im, proto.input[b])
            if c is not None and isinstance(im.values.get(proto.input[a]), Tensor):
                return proto.input[a], c, proto
    return name, 1.0, None


# Scores at or below this mask a key as -inf does (PyTorch's dynamo exports mask with the lowest f32).
_LOWEST = -1e30


def _kinds(values: np.ndarray) -> set[str] | None:
    """'zero', 'inf' (-inf) and 'low' (a finite mask score) among the values; None if any is something else."""
    if not np.all((values == 0) | (values <= _LOWEST)):
        return None
    return {k for k, hit in (("zero", np.any(values == 0)), ("inf", np.any(values == -np.inf)),
                             ("low", np.any((values <= _LOWEST) & np.isfinite(values)))) if hit}


def _mask_kinds(im: Any, name: str, depth: int = 0) -> set[str] | None:
    """The kinds of value a computed mask holds when they are only 0 and masking scores (so `mask == 0` says
    where to attend), else None."""
    c = _const(im, name)
    if c is not None:
        return _kinds(c)
    proto = im.producers.get(name)
    if proto is None or depth > 12:
        return None
    if proto.op_type == "Where":
        parts = [_mask_kinds(im, n, depth + 1) for n in proto.input[1:]]
        return None if None in parts else set().union(*parts)  # type: ignore[arg-type]
    if proto.op_type == "ConstantOfShape":
        from onnx import numpy_helper
        return _kinds(next((numpy_helper.to_array(a.t) for a in proto.attribute if a.name == "value"),
                           np.zeros(1)))
    if proto.op_type in _LAYOUT:
        return _mask_kinds(im, proto.input[0], depth + 1)
    return None


def match_attention(im: Any, node: Node) -> bool:
    """Emits dlc's attention for the pattern starting at this MatMul; False when it does not match."""
    q_name, k_name = node.inputs
    q_t, k_t = im.values.get(q_name), im.values.get(k_name)
    if not isinstance(q_t, Tensor) or not isinstance(k_t, Tensor) or q_t.shape is None or k_t.shape is None \
            or len(q_t.shape) < 3 or len(q_t.shape) != len(k_t.shape):
        return False
    absorbed, scale, cur = [], 1.0, node.outputs[0]
    step = _step(im, cur, ("Mul", "Div"))
    if step is not None:
        c = _scalar(im, step.input[1]) if step.input[0] == cur else \
            (_scalar(im, step.input[0]) if step.op_type == "Mul" else None)
        if c is None or c == 0:
            return False
        scale *= c if step.op_type == "Mul" else 1.0 / c
        absorbed.append(step)
        cur = step.output[0]
    mask, kinds = None, None
    add = _step(im, cur, ("Add",))
    if add is not None:
        mask = add.input[1] if add.input[0] == cur else add.input[0]
        kinds = _mask_kinds(im, mask)
        if kinds is None:
            return False
        absorbed.append(add)
        cur = add.output[0]
    soft = _step(im, cur, ("Softmax",))
    rank = len(q_t.shape)
    if soft is None or int(next((a.i for a in soft.attribute if a.name == "axis"), -1)) % rank != rank - 1:
        return False
    absorbed.append(soft)
    cur = soft.output[0]
    readers, guarded = im.readers.get(cur, []), False
    if len(readers) == 2 and {r.op_type for r in readers} == {"IsNaN", "Where"}:  # Hugging Face's NaN guard
        guard = next(r for r in readers if r.op_type == "Where")
        isnan = next(r for r in readers if r.op_type == "IsNaN")
        if list(guard.input) != [isnan.output[0], guard.input[1], cur] or _scalar(im, guard.input[1]) != 0.0 \
                or len(im.readers.get(isnan.output[0], [])) != 1:
            return False
        absorbed += [isnan, guard]
        cur = guard.output[0]
        guarded = True
    out = _step(im, cur, ("MatMul",))
    if out is None or out.input[0] != cur:
        return False
    # The mask and v may come later in the walk (BERT computes its mask after the first q @ kT): convert
    # them now, never through the pattern's own nodes.
    avoid = {id(p) for p in absorbed + [out, node.proto]}
    if not im.convert_early(out.input[1], avoid) or (mask is not None and not im.convert_early(mask, avoid)):
        return False
    q_src, q_scale, _ = _prescaled(im, q_name)
    k_src, k_scale, _ = _prescaled(im, k_name)
    scale *= q_scale * k_scale
    q, kt, v = im.tensor(q_src), im.tensor(k_src), im.tensor(out.input[1])
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    k = im.temp(f"transpose({kt.name}, perm={literal(perm)})", "keys")
    args = f"{q.name}, {k}, {v.name}"
    if mask is None:
        expr = f"attention({args}, scale={literal(scale)})"
    else:
        causal = _causal(im, mask)
        if causal:
            expr = f"attention({args}, causal=true, scale={literal(scale)})"
        else:
            m = im.tensor(mask)
            keep = f"{m.name} == 0.0"
            if m.shape is not None and len(m.shape) == 2:  # not a [batch, keys] padding mask: [queries, keys]
                keep = f"unsqueeze({keep}, 0)"
            may = im.temp(keep, "may_attend")
            expr = f"masked_attention({args}, {may}, scale={literal(scale)})"
            if guarded and kinds and "inf" in kinds:  # a query whose keys are all masked: NaN in ONNX, which
                # the guard turns into 0 (with a finite mask score the softmax averages, as masked_attention)
                seen = im.temp(f"max(cast({may}, \"{q.dtype}\"), axis=-1, keepdims=true)", "attends")
                expr = f"{im.temp(expr, 'attended')} * {seen}"
    result = im.emit(out.output[0], expr)
    im.set(node.outputs[0], result)  # read only inside the pattern: no one sees this value
    for proto in absorbed + [out]:
        im.absorb(proto, result)
    return True


def _causal(im: Any, mask: str) -> bool:
    """A mask that lets query i see keys j <= i (aligned at the end, as dlc's causal=true): a constant, or
    Where(Equal(Trilu(filled), 0), -inf, 0) over a symbolic [T, T] (GPT-2's export)."""
    c = im.const(mask)
    if c is None:
        return _traced_triangle(im, mask)
    if c.ndim < 2 or any(d != 1 for d in c.shape[:-2]):
        return False
    tq, tk = c.shape[-2:]
    keep = c.reshape(tq, tk) == 0
    return bool(np.array_equal(keep, np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq)))


def _traced_triangle(im: Any, mask: str) -> bool:
    """Whether the mask is 0 exactly on the lower triangle (diagonal included) of a square over its last two
    axes and a masking score elsewhere, read from the nodes computing it: Where(cond, a, b) with a and b
    constant and cond, through casts and Expand, a lower `triangle` with k=0 the importer wrote (ids compared,
    im.triangles) or the filled triangle Trilu(upper=0, k=0) of a nonzero fill, or cond's Equal to 0."""
    t = im.values.get(mask)
    where = im.producers.get(mask)
    if not isinstance(t, Tensor) or t.shape is None or len(t.shape) < 2 or t.shape[-1] != t.shape[-2] \
            or where is None or where.op_type != "Where":
        return False
    inside, outside = _scalar(im, where.input[1]), _scalar(im, where.input[2])
    cond = im.producers.get(where.input[0])
    if cond is not None and cond.op_type == "Equal" and _scalar(im, cond.input[1]) == 0.0:
        inside, outside = outside, inside
        cond = im.producers.get(cond.input[0])
    while cond is not None and cond.output[0] not in im.triangles and cond.op_type in ("Cast", "Identity",
                                                                                         "Expand"):
        cond = im.producers.get(cond.input[0])
    if inside != 0.0 or outside is None or outside > _LOWEST or cond is None:
        return False
    if cond.output[0] in im.triangles:
        return bool(im.triangles[cond.output[0]] == (0, False))
    if cond.op_type != "Trilu" or any(a.name == "upper" and a.i != 0 for a in cond.attribute) \
            or (len(cond.input) > 1 and cond.input[1] and _scalar(im, cond.input[1]) != 0.0):
        return False
    fill = im.producers.get(cond.input[0])
    if fill is None or fill.op_type != "Expand":
        return False
    value = _const(im, fill.input[0])
    return value is not None and value.size > 0 and bool(np.all(value == value.reshape(-1)[0])) \
        and bool(value.reshape(-1)[0] != 0)
