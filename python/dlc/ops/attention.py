"""Attention: scaled dot-product attention, multi-head attention layers and positional encodings.

Attention is composed from primitives (matmul with trans_b, mul_scalar, where, softmax, matmul), so it
differentiates and fuses through their rules. Masked positions get a large negative score rather than -inf:
a row whose keys are all masked (a padded query) then averages the values instead of producing NaN.
Masks: `causal=true` (an attribute) lets query i see keys j <= i (aligned at the end when there are more keys
than queries); a padding mask is a tensor operand of the `masked_*` ops, since tensors cannot be keywords.
A rank-2 mask is a key-padding mask [batch, keys]; any other mask must broadcast against the scores
[..., queries, keys]. True (or nonzero) means "may attend".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..dims import Dim, concrete
from ..errors import ShapeError
from ..initializers import make_spec
from ..ir import TensorType
from . import registry
from .common import need_float
from .registry import AttrSpec, OpDef, register

MASKED_SCORE = -1e9


def _keep_mask(b: Any, mask: int, scores: TensorType) -> int:
    """The mask as a bool tensor that broadcasts against the scores."""
    mt = b.type_of(mask)
    keep = mask if mt.dtype == "bool" else b.op1("ne", mask, b.const(np.zeros(()), mt.dtype))
    if mt.rank == 2 and scores.rank >= 3:
        if mt.shape != (scores.shape[0], scores.shape[-1]):
            raise ShapeError(f"a rank-2 mask is a key-padding mask [batch, keys] = "
                             f"[{scores.shape[0]}, {scores.shape[-1]}], got {mt}")
        keep = b.op1("reshape", keep, shape=(scores.shape[0],) + (1,) * (scores.rank - 2) + (scores.shape[-1],))
    return keep


def _causal_mask(b: Any, tq: Dim, tk: Dim) -> int:
    """Query i may see keys j <= i + (tk - tq). A constant when both lengths are known; otherwise built when the
    plan runs (`triangle`), which needs the offset tk - tq: 0 when they are the same symbol."""
    if isinstance(tq, int) and isinstance(tk, int):
        return b.const(np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq))
    if tq != tk:
        concrete(tq if not isinstance(tq, int) else tk, "causal attention over different query and key lengths")
    return b.op1("triangle", shape=(tq, tk), k=0, upper=False, dtype="bool")


def attend(b: Any, q: int, k: int, v: int, mask: int | None, causal: bool, scale: float) -> int:
    """softmax(q k^T * scale + masks) v over the last two axes; leading axes (batch, heads) broadcast."""
    qt, kt, vt = b.type_of(q), b.type_of(k), b.type_of(v)
    for t in (qt, kt, vt):
        need_float("attention", t)
        if t.rank < 2:
            raise ShapeError(f"q, k and v need rank >= 2 ([..., time, features]), got {t}")
    if qt.shape[-1] != kt.shape[-1] or kt.shape[-2] != vt.shape[-2]:
        raise ShapeError(f"q [..., Tq, d], k [..., Tk, d] and v [..., Tk, dv] do not fit: {qt}, {kt}, {vt}")
    if scale == 0.0:
        scale = 1.0 / math.sqrt(concrete(qt.shape[-1], "attention width"))
    scores = b.op1("mul_scalar", b.op1("matmul", q, k, trans_b=True), value=scale)
    st = b.type_of(scores)
    low = b.scalar(MASKED_SCORE, st.dtype)
    if causal:
        scores = b.op1("where", _causal_mask(b, st.shape[-2], st.shape[-1]), scores, low)
    if mask is not None:
        scores = b.op1("where", _keep_mask(b, mask, st), scores, low)
    return b.op1("matmul", b.op1("softmax", scores, axis=-1), v)


_CAUSAL = AttrSpec("causal", "bool", False, doc="query i attends to keys j <= i only")
_SCALE = AttrSpec("scale", "float", 0.0, doc="score scale; 0 means 1/sqrt(d)")

register(OpDef("attention", ("q", "k", "v"), (_CAUSAL, _SCALE),
               expand=lambda b, ctx, ins, a: (attend(b, *ins, None, a["causal"], a["scale"]),),
               doc="scaled dot-product attention softmax(q k^T / sqrt(d)) v over [..., time, features]"))
register(OpDef("masked_attention", ("q", "k", "v", "mask"), (_CAUSAL, _SCALE),
               expand=lambda b, ctx, ins, a: (attend(b, *ins[:3], ins[3], a["causal"], a["scale"]),),
               doc="attention with a padding mask (true = may attend): [batch, keys], or broadcastable to "
                   "the scores [..., queries, keys]"))


class _Prefixed:
    """A LayerContext whose parameter names sit under a sub-layer name (`q.weight`), for reusing `dense`."""

    def __init__(self, ctx: Any, prefix: str):
        self.ctx, self.prefix = ctx, prefix

    def param(self, local: str, t: TensorType, init: Any, fans: tuple[int, int]) -> int:
        return self.ctx.param(f"{self.prefix}.{local}", t, init, fans)

    def state(self, local: str, t: TensorType, init: Any) -> int:
        return self.ctx.state(f"{self.prefix}.{local}", t, init)

    def salt(self) -> int:
        return self.ctx.salt()


def _dense(b: Any, ctx: Any, name: str, x: int, units: int) -> int:
    op = registry.get("dense")
    return op.expand(b, _Prefixed(ctx, name), [x], op.bind_attrs({"units": units}))[0]


def _heads(b: Any, y: int, heads: int) -> int:
    """[B, T, d] -> [B, heads, T, d / heads]."""
    batch, time, d = b.type_of(y).shape
    return b.op1("permute", b.op1("reshape", y, shape=(batch, time, heads, d // heads)), perm=(0, 2, 1, 3))


def _mha(b: Any, ctx: Any, x: int, memory: int, mask: int | None, attrs: dict[str, Any]) -> tuple[int, ...]:
    d_model, heads = attrs["d_model"], attrs["heads"]
    for v in (x, memory):
        t = b.type_of(v)
        need_float("multi_head_attention", t)
        if t.rank != 3:
            raise ShapeError(f"inputs must be [batch, time, features], got {t}")
    if heads < 1 or d_model < 1 or d_model % heads:
        raise ShapeError(f"d_model ({d_model}) must be a positive multiple of heads ({heads})")
    q = _heads(b, _dense(b, ctx, "q", x, d_model), heads)
    k = _heads(b, _dense(b, ctx, "k", memory, d_model), heads)
    v = _heads(b, _dense(b, ctx, "v", memory, d_model), heads)
    o = attend(b, q, k, v, mask, attrs.get("causal", False), 0.0)
    batch, _, time, _ = b.type_of(o).shape
    merged = b.op1("reshape", b.op1("permute", o, perm=(0, 2, 1, 3)), shape=(batch, time, d_model))
    return (_dense(b, ctx, "o", merged, d_model),)


_MHA = (AttrSpec("d_model", "int", doc="model width (q/k/v/o projections)"),
        AttrSpec("heads", "int", doc="attention heads; d_model must divide by it"))
register(OpDef("multi_head_attention", ("x",), _MHA + (_CAUSAL,), layer=True,
               expand=lambda b, ctx, ins, a: _mha(b, ctx, ins[0], ins[0], None, a),
               doc="multi-head self-attention over x [batch, time, features]; projections q, k, v, o"))
register(OpDef("masked_multi_head_attention", ("x", "mask"), _MHA + (_CAUSAL,), layer=True,
               expand=lambda b, ctx, ins, a: _mha(b, ctx, ins[0], ins[0], ins[1], a),
               doc="multi-head self-attention with a key-padding mask [batch, time] (true = real token)"))
register(OpDef("cross_attention", ("x", "memory"), _MHA, layer=True,
               expand=lambda b, ctx, ins, a: _mha(b, ctx, ins[0], ins[1], None, a),
               doc="multi-head attention of queries from x to keys and values from memory (encoder output)"))


def sinusoidal_table(time: int, d: int) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same) (Vaswani et al., 2017)."""
    pos = np.arange(time, dtype=np.float64)[:, None]
    col = np.arange(d)[None, :]
    angle = pos / np.power(10000.0, (2 * (col // 2)) / d)
    return np.where(col % 2 == 0, np.sin(angle), np.cos(angle))


def _positional(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    x = ins[0]
    xt = b.type_of(x)
    need_float("positional_encoding", xt)
    if xt.rank < 2:
        raise ShapeError(f"x must be [..., time, features], got {xt}")
    time, d = concrete(xt.shape[-2], "sequence length"), concrete(xt.shape[-1], "feature width")
    if time > attrs["max_len"]:
        raise ShapeError(f"sequence length {time} exceeds max_len={attrs['max_len']}")
    if attrs["kind"] == "sinusoidal":
        return (b.op1("add", x, b.const(sinusoidal_table(time, d), xt.dtype)),)
    table = ctx.param("weight", TensorType(xt.dtype, (attrs["max_len"], d)), make_spec("normal", {"std": 0.02}),
                      (attrs["max_len"], d))
    if time < attrs["max_len"]:
        table = b.op1("slice", table, axis=0, start=0, end=time)
    return (b.op1("add", x, table),)


register(OpDef("positional_encoding", ("x",),
               (AttrSpec("kind", "str", "sinusoidal", ("sinusoidal", "learned")),
                AttrSpec("max_len", "int", 512, doc="longest sequence (rows of the learned table)")),
               expand=_positional, layer=True,
               doc="adds position information to x [..., time, features]: fixed sin/cos waves, or a learned "
                   "table `weight` [max_len, features]"))
