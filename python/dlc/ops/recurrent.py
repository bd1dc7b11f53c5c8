"""Recurrent layers over batch-first sequences [batch, time, features]: rnn, lstm, gru.

Representation: each (layer, direction) of a recurrence is ONE primitive node with fused C++ kernels
(csrc/kernels/recurrent/): `lstm_seq(x, w_ih, w_hh, b, h0, c0) -> (y, h_T, c_T, gates, c)` projects the inputs
of all time steps with one GEMM, then loops over time with a small GEMM h @ w_hh and fused gate math. Its
gradient is one `lstm_seq_grad` node doing backpropagation through time. What the backward pass needs (the
activated gates, the cell states) are extra outputs of the forward node, so they are ordinary graph values the
memory planner sees; gradients never flow through them (`differentiable_outputs`).

Equations and gate order are PyTorch's (weights stored [in, gates * hidden] for x @ W):
  LSTM  i, f, g, o = s(.), s(.), tanh(.), s(.) of x W_ih + h W_hh + b;  c' = f c + i g;  h' = o tanh(c')
  GRU   r, z = s(x W_ir + b_ir + h W_hr + b_hr), s(...);  n = tanh(x W_in + b_in + r (h W_hn + b_hn));
        h' = (1 - z) n + z h
  RNN   h' = tanh(x W_ih + h W_hh + b)  (or relu)
Layers compose the primitives: several layers feed each other; `bidirectional` adds a `reverse_time` node per
layer and concatenates both directions on the feature axis. Initial states enter through the `*_state` ops
(`lstm_state(x, h0, c0, hidden)`), because tensor arguments cannot be keywords; states are [layers *
directions, batch, hidden] as in PyTorch, and the final states come back in the same layout, so feeding them
to the next call continues the sequence exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..dims import concrete
from ..errors import ShapeError
from ..initializers import make_spec
from ..ir import TensorType
from .common import need_float, rand, same_dtype
from .registry import AttrSpec, OpDef, Pattern, Sample, register


@dataclass(frozen=True)
class Cell:
    gates: int  # weight blocks side by side: LSTM 4, GRU 3, RNN 1
    states: int  # recurrent state tensors: h (and c for the LSTM)
    biases: int  # bias vectors: GRU keeps b_hh apart because r multiplies (h W_hn + b_hn)
    saved: int  # width of the saved-activation output, in units of hidden (0: none)


CELLS = {"rnn": Cell(1, 1, 1, 0), "lstm": Cell(4, 2, 1, 4), "gru": Cell(3, 1, 2, 4)}
_REVERSE = AttrSpec("reverse_time", "bool", False, doc="run from the last time step to the first")
_ACT = AttrSpec("activation", "str", "tanh", ("tanh", "relu"))


# ---- shape rules ----

def _seq_types(kind: str, types: list[TensorType]) -> tuple[str, Any, Any, int]:
    """Checks [x, w_ih, w_hh, biases..., states...]; returns dtype, batch, time and hidden size."""
    cell = CELLS[kind]
    x, w_ih, w_hh = types[:3]
    need_float("", x)
    dtype = same_dtype("", types)
    if x.rank != 3:
        raise ShapeError(f"x must be [batch, time, features], got {x}")
    batch, time, width = x.shape
    if w_hh.rank != 2:
        raise ShapeError(f"w_hh must be [hidden, {cell.gates} * hidden], got {w_hh}")
    hidden = concrete(w_hh.shape[0], "hidden size")
    g = cell.gates * hidden
    if w_hh.shape[1] != g or w_ih.shape != (width, g):
        raise ShapeError(f"weights must be w_ih [{width}, {g}] and w_hh [{hidden}, {g}], got {w_ih} and {w_hh}")
    for t in types[3:3 + cell.biases]:
        if t.shape != (g,):
            raise ShapeError(f"biases must be [{g}], got {t}")
    for t in types[3 + cell.biases:]:
        if t.shape != (batch, hidden):
            raise ShapeError(f"states must be [{batch}, {hidden}], got {t}")
    if isinstance(time, int) and time < 1:
        raise ShapeError("the sequence needs at least one time step")
    return dtype, batch, time, hidden


def _seq_infer(kind: str) -> Callable[[list[TensorType], dict[str, Any]], list[TensorType]]:
    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        cell = CELLS[kind]
        if len(types) != 3 + cell.biases + cell.states:
            raise ShapeError("wrong number of operands")
        dt, batch, time, hidden = _seq_types(kind, types)
        outs = [TensorType(dt, (batch, time, hidden))] + [TensorType(dt, (batch, hidden))] * cell.states
        if cell.saved:
            outs.append(TensorType(dt, (batch, time, cell.saved * hidden)))
        if kind == "lstm":
            outs.append(TensorType(dt, (batch, time, hidden)))  # the cell state of every step
        return outs
    return infer


def _grad_infer(kind: str) -> Callable[[list[TensorType], dict[str, Any]], list[TensorType]]:
    """Gradient kernels read [x, w_ih, w_hh, states..., forward outputs..., output gradients...] and write the
    gradients of the forward node's inputs, in their order. An output gradient may be a scalar zero (none)."""
    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        cell = CELLS[kind]
        x, w_ih, w_hh = types[:3]
        bias = TensorType(x.dtype, (w_hh.shape[1],))
        return [x, w_ih, w_hh] + [bias] * cell.biases + list(types[3:3 + cell.states])
    return infer


def _zeros(b: Any, t: TensorType) -> int:
    return b.op1("broadcast_to", b.scalar(0.0, t.dtype), shape=t.shape)


def _seq_grad(kind: str) -> Callable[..., list[int | None]]:
    def grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
        cell = CELLS[kind]
        x, w_ih, w_hh = node.inputs[:3]
        states = node.inputs[3 + cell.biases:]
        outs = node.outputs
        # An unused output (the sequence when only the last step is read, a final state) passes a scalar zero:
        # the kernel treats it as "no gradient" without a zero tensor being materialized.
        zero = b.scalar(0.0, b.type_of(x).dtype)
        g_outs = [zero if g is None else g for g in gs[:1 + cell.states]]
        saved = outs[1 + cell.states:]
        return list(b.op(f"{kind}_seq_grad", (x, w_ih, w_hh, *states, outs[0], *saved, *g_outs),
                         **{k: v for k, v in node.attrs}))
    return grad


# ---- NumPy references: the cell equations written out, one time step at a time ----

def _sig(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _order(time: int, reverse_time: bool) -> list[int]:
    return list(range(time - 1, -1, -1) if reverse_time else range(time))


def _f64(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _lstm_np(x, w_ih, w_hh, b, h0, c0, reverse_time=False):
    dt = x.dtype
    x, w_ih, w_hh, b, h, c = _f64(x, w_ih, w_hh, b, h0, c0)
    (batch, time, _), hid = x.shape, h.shape[1]
    y, cs, gates = np.zeros((batch, time, hid)), np.zeros((batch, time, hid)), np.zeros((batch, time, 4 * hid))
    for t in _order(time, reverse_time):
        a = x[:, t] @ w_ih + h @ w_hh + b
        i, f, g, o = _sig(a[:, :hid]), _sig(a[:, hid:2 * hid]), np.tanh(a[:, 2 * hid:3 * hid]), _sig(a[:, 3 * hid:])
        c = f * c + i * g
        h = o * np.tanh(c)
        y[:, t], cs[:, t], gates[:, t] = h, c, np.concatenate([i, f, g, o], axis=1)
    return tuple(v.astype(dt) for v in (y, h, c, gates, cs))


def _gru_np(x, w_ih, w_hh, b_ih, b_hh, h0, reverse_time=False):
    dt = x.dtype
    x, w_ih, w_hh, b_ih, b_hh, h = _f64(x, w_ih, w_hh, b_ih, b_hh, h0)
    (batch, time, _), hid = x.shape, h.shape[1]
    y, saved = np.zeros((batch, time, hid)), np.zeros((batch, time, 4 * hid))
    for t in _order(time, reverse_time):
        gi, gh = x[:, t] @ w_ih + b_ih, h @ w_hh + b_hh
        r = _sig(gi[:, :hid] + gh[:, :hid])
        z = _sig(gi[:, hid:2 * hid] + gh[:, hid:2 * hid])
        n = np.tanh(gi[:, 2 * hid:] + r * gh[:, 2 * hid:])
        h = (1 - z) * n + z * h
        y[:, t], saved[:, t] = h, np.concatenate([r, z, n, gh[:, 2 * hid:]], axis=1)
    return tuple(v.astype(dt) for v in (y, h, saved))


def _rnn_np(x, w_ih, w_hh, b, h0, reverse_time=False, activation="tanh"):
    dt = x.dtype
    x, w_ih, w_hh, b, h = _f64(x, w_ih, w_hh, b, h0)
    act = np.tanh if activation == "tanh" else (lambda v: np.maximum(v, 0.0))
    y = np.zeros(x.shape[:2] + (h.shape[1],))
    for t in _order(x.shape[1], reverse_time):
        h = act(x[:, t] @ w_ih + h @ w_hh + b)
        y[:, t] = h
    return y.astype(dt), h.astype(dt)


def _prev_states(y: np.ndarray, h0: np.ndarray, order: list[int]) -> np.ndarray:
    """h_{t-1} for every t: the state each step read (h0 for the first step in processing order)."""
    prev = np.empty_like(y)
    for k, t in enumerate(order):
        prev[:, t] = h0 if k == 0 else y[:, order[k - 1]]
    return prev


def _weight_grads(x: np.ndarray, w_ih: np.ndarray, hprev: np.ndarray, d_in: np.ndarray,
                  d_hid: np.ndarray) -> list[np.ndarray]:
    """Input, w_ih and w_hh gradients from the per-step pre-activation gradients."""
    return [d_in @ w_ih.T, np.einsum("bti,btg->ig", x, d_in), np.einsum("bth,btg->hg", hprev, d_hid)]


def _lstm_grad_np(x, w_ih, w_hh, h0, c0, y, gates, cs, gy, gh, gc, reverse_time=False):
    dt = x.dtype
    x, w_ih, w_hh, h0, c0, y, gates, cs, gy, dh, dc = _f64(x, w_ih, w_hh, h0, c0, y, gates, cs, gy, gh, gc)
    gy = np.broadcast_to(gy, y.shape)  # a scalar zero stands for "no gradient"
    hid, order = h0.shape[1], _order(x.shape[1], reverse_time)
    dG = np.zeros_like(gates)
    for k in range(len(order) - 1, -1, -1):
        t = order[k]
        c_prev = c0 if k == 0 else cs[:, order[k - 1]]
        i, f, g, o = (gates[:, t, j * hid:(j + 1) * hid] for j in range(4))
        tc = np.tanh(cs[:, t])
        dht = dh + gy[:, t]
        dct = dc + dht * o * (1 - tc ** 2)
        dG[:, t] = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g ** 2),
                                   dht * tc * o * (1 - o)], axis=1)
        dc, dh = dct * f, dG[:, t] @ w_hh.T
    grads = _weight_grads(x, w_ih, _prev_states(y, h0, order), dG, dG) + [dG.sum((0, 1)), dh, dc]
    return tuple(v.astype(dt) for v in grads)


def _gru_grad_np(x, w_ih, w_hh, h0, y, saved, gy, gh, reverse_time=False):
    dt = x.dtype
    x, w_ih, w_hh, h0, y, saved, gy, dh = _f64(x, w_ih, w_hh, h0, y, saved, gy, gh)
    gy = np.broadcast_to(gy, y.shape)
    hid, order = h0.shape[1], _order(x.shape[1], reverse_time)
    hprev = _prev_states(y, h0, order)
    d_in, d_hid = np.zeros(y.shape[:2] + (3 * hid,)), np.zeros(y.shape[:2] + (3 * hid,))
    for t in reversed(order):
        r, z, n, hn = (saved[:, t, j * hid:(j + 1) * hid] for j in range(4))
        dht = dh + gy[:, t]
        dan = dht * (1 - z) * (1 - n ** 2)
        dar, daz = dan * hn * r * (1 - r), dht * (hprev[:, t] - n) * z * (1 - z)
        d_in[:, t] = np.concatenate([dar, daz, dan], axis=1)
        d_hid[:, t] = np.concatenate([dar, daz, dan * r], axis=1)
        dh = dht * z + d_hid[:, t] @ w_hh.T
    grads = _weight_grads(x, w_ih, hprev, d_in, d_hid) + [d_in.sum((0, 1)), d_hid.sum((0, 1)), dh]
    return tuple(v.astype(dt) for v in grads)


def _rnn_grad_np(x, w_ih, w_hh, h0, y, gy, gh, reverse_time=False, activation="tanh"):
    dt = x.dtype
    x, w_ih, w_hh, h0, y, gy, dh = _f64(x, w_ih, w_hh, h0, y, gy, gh)
    gy = np.broadcast_to(gy, y.shape)
    order = _order(x.shape[1], reverse_time)
    dA = np.zeros_like(y)
    for t in reversed(order):
        slope = (y[:, t] > 0).astype(np.float64) if activation == "relu" else 1 - y[:, t] ** 2
        dA[:, t] = (dh + gy[:, t]) * slope
        dh = dA[:, t] @ w_hh.T
    grads = _weight_grads(x, w_ih, _prev_states(y, h0, order), dA, dA) + [dA.sum((0, 1)), dh]
    return tuple(v.astype(dt) for v in grads)


REFERENCES = {"lstm": (_lstm_np, _lstm_grad_np), "gru": (_gru_np, _gru_grad_np), "rnn": (_rnn_np, _rnn_grad_np)}


# ---- samples: small sequences, both directions ----

def _seq_inputs(kind: str, rng: np.random.Generator, dt: str, batch: int, time: int, width: int,
                hid: int) -> list[np.ndarray]:
    cell = CELLS[kind]
    g = cell.gates * hid
    return ([rand(rng, (batch, time, width), dt), rand(rng, (width, g), dt), rand(rng, (hid, g), dt)]
            + [rand(rng, (g,), dt) for _ in range(cell.biases)]
            + [rand(rng, (batch, hid), dt) for _ in range(cell.states)])


def _sample_attrs(kind: str) -> list[dict[str, Any]]:
    base = [{"reverse_time": False}, {"reverse_time": True}]
    return base + ([{"reverse_time": False, "activation": "relu"}] if kind == "rnn" else [])


def _kinks(attrs: dict[str, Any]) -> Callable[[list[Any]], bool] | None:
    if attrs.get("activation") != "relu":
        return None
    # A pre-activation within the finite-difference step of 0 would straddle relu's kink.
    return lambda ins: bool(np.any(np.abs(_rnn_preacts(*ins)) < 1e-4))


def _rnn_preacts(x, w_ih, w_hh, b, h0) -> np.ndarray:
    y, _ = _rnn_np(x, w_ih, w_hh, b, h0, activation="relu")
    hprev = _prev_states(y.astype(np.float64), np.asarray(h0, np.float64), list(range(x.shape[1])))
    return x @ w_ih + hprev @ w_hh + b


def _fwd_samples(kind: str) -> Callable[[np.random.Generator, str], list[Sample]]:
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        out = []
        for k, attrs in enumerate(_sample_attrs(kind)):
            shape = (2, 3, 3, 2) if k % 2 == 0 else (3, 4, 2, 3)
            out.append(Sample(_seq_inputs(kind, rng, dt, *shape), attrs, kinks=_kinks(attrs)))
        return out
    return samples


def _grad_samples(kind: str) -> Callable[[np.random.Generator, str], list[Sample]]:
    """Gradient kernels need consistent saved activations: run the forward reference in float64 first."""
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        cell, fwd = CELLS[kind], REFERENCES[kind][0]
        out = []
        for attrs in _sample_attrs(kind):
            ins = _seq_inputs(kind, rng, "f64", 2, 4, 3, 3)
            outs = fwd(*ins, **attrs)
            states = ins[3 + cell.biases:]
            g_outs = [rng.uniform(-1, 1, o.shape) for o in outs[:1 + cell.states]]
            if attrs["reverse_time"]:
                g_outs[0] = np.zeros(())  # no gradient into the sequence (only the final state is used)
            arrays = [*ins[:3], *states, outs[0], *outs[1 + cell.states:], *g_outs]
            out.append(Sample([a.astype(np.float32 if dt == "f32" else np.float64) for a in arrays], attrs,
                              grad=False))
        return out
    return samples


for _kind, _cell in CELLS.items():
    _states = ("h0", "c0")[:_cell.states]
    _biases = ("b",) if _cell.biases == 1 else ("b_ih", "b_hh")
    _attrs = (_REVERSE, _ACT) if _kind == "rnn" else (_REVERSE,)
    _lower = (lambda n, t: ([int(n.attr("reverse_time")), int(n.attr("activation") == "relu")], [])) \
        if _kind == "rnn" else (lambda n, t: ([int(n.attr("reverse_time"))], []))
    register(OpDef(f"{_kind}_seq", ("x", "w_ih", "w_hh", *_biases, *_states), _attrs, infer=_seq_infer(_kind),
                   pattern=Pattern.OPAQUE, kernel=f"{_kind}_seq", lower=_lower, grad=_seq_grad(_kind),
                   differentiable_outputs=tuple(range(1 + _cell.states)), user=False,
                   reference=REFERENCES[_kind][0], samples=_fwd_samples(_kind),
                   doc=f"one {_kind.upper()} layer in one direction over a whole sequence (fused kernel); outputs "
                       "the hidden state of every step, the final state(s) and activations saved for backward"))
    _saved = {"lstm": ("gates", "c"), "gru": ("saved",), "rnn": ()}[_kind]
    register(OpDef(f"{_kind}_seq_grad", ("x", "w_ih", "w_hh", *_states, "y", *_saved, "gy",
                                         *("g" + s[0] + "T" for s in _states)),
                   _attrs, infer=_grad_infer(_kind), pattern=Pattern.OPAQUE, kernel=f"{_kind}_seq_grad",
                   lower=_lower, differentiable=False, user=False, reference=REFERENCES[_kind][1],
                   samples=_grad_samples(_kind), doc=f"backpropagation through time for {_kind}_seq"))


# ---- layers ----

def _layer_expand(kind: str, with_state: bool) -> Callable[..., tuple[int, ...]]:
    def expand(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
        cell = CELLS[kind]
        x = ins[0]
        xt = b.type_of(x)
        need_float(kind, xt)
        if xt.rank != 3:
            raise ShapeError(f"x must be [batch, time, features], got {xt}")
        hid, layers = attrs["hidden"], attrs["layers"]
        if hid < 1 or layers < 1:
            raise ShapeError(f"hidden and layers must be positive, got {hid} and {layers}")
        dirs = 2 if attrs["bidirectional"] else 1
        dt, batch = xt.dtype, xt.shape[0]
        state_t = TensorType(dt, (layers * dirs, batch, hid))
        for s in ins[1:]:
            if b.type_of(s) != state_t:
                raise ShapeError(f"initial states must be {state_t} ([layers * directions, batch, hidden]), "
                                 f"got {b.type_of(s)}")
        bound = 1.0 / math.sqrt(hid)
        init = make_spec("uniform", {"low": -bound, "high": bound})  # PyTorch's default for recurrent layers
        g = cell.gates * hid
        finals: list[list[int]] = [[] for _ in range(cell.states)]
        seq = x
        for layer in range(layers):
            ys = []
            for d in range(dirs):
                name = f"l{layer}" + ("_reverse" if d else "")
                width = concrete(b.type_of(seq).shape[-1], f"{kind} input width")
                w_ih = ctx.param(f"{name}.ih.weight", TensorType(dt, (width, g)), init, (width, g))
                w_hh = ctx.param(f"{name}.hh.weight", TensorType(dt, (hid, g)), init, (hid, g))
                biases = ([ctx.param(f"{name}.bias", TensorType(dt, (g,)), init, (width, g))] if cell.biases == 1
                          else [ctx.param(f"{name}.{p}.bias", TensorType(dt, (g,)), init, (width, g))
                                for p in ("ih", "hh")])
                if kind == "lstm" and attrs["forget_bias"]:
                    shift = np.zeros(g)
                    shift[hid:2 * hid] = attrs["forget_bias"]
                    biases = [b.op1("add", biases[0], b.const(shift, dt))]
                k = layer * dirs + d
                states = ([b.op1("reshape", b.op1("slice", s, axis=0, start=k, end=k + 1), shape=(batch, hid))
                           for s in ins[1:]] if with_state
                          else [_zeros(b, TensorType(dt, (batch, hid)))] * cell.states)
                extra = {"activation": attrs["activation"]} if kind == "rnn" else {}
                outs = b.op(f"{kind}_seq", (seq, w_ih, w_hh, *biases, *states), reverse_time=bool(d), **extra)
                ys.append(outs[0])
                for j in range(cell.states):
                    finals[j].append(outs[1 + j])
            seq = ys[0] if dirs == 1 else b.op1("concat", *ys, axis=-1)
        top = finals[0][-dirs:]  # the top layer's final hidden state per direction
        result = [seq if attrs["return_sequences"] else (top[0] if dirs == 1 else b.op1("concat", *top, axis=-1))]
        if with_state or attrs["return_state"]:
            for per_state in finals:
                stacked = [b.op1("reshape", f, shape=(1, batch, hid)) for f in per_state]
                result.append(stacked[0] if len(stacked) == 1 else b.op1("concat", *stacked, axis=0))
        return tuple(result)
    return expand


def _layer_attrs(kind: str, with_state: bool) -> tuple[AttrSpec, ...]:
    attrs = [AttrSpec("hidden", "int", doc="hidden state size"),
             AttrSpec("layers", "int", 1, doc="stacked layers, each feeding the next"),
             AttrSpec("bidirectional", "bool", False, doc="add a reverse-time pass; features are concatenated"),
             AttrSpec("return_sequences", "bool", True,
                      doc="output every step [B, T, D*hidden], else the last step [B, D*hidden]")]
    if not with_state:
        attrs.append(AttrSpec("return_state", "bool", False, doc="also return the final state(s)"))
    if kind == "rnn":
        attrs.append(_ACT)
    if kind == "lstm":
        attrs.append(AttrSpec("forget_bias", "float", 1.0,
                              doc="added to the forget gate's bias (as TensorFlow does); 0 gives PyTorch's LSTM"))
    return tuple(attrs)


_LAYER_DOCS = {
    "rnn": "Elman RNN h' = tanh(x W_ih + h W_hh + b)",
    "lstm": "LSTM (PyTorch's gates i, f, g, o: c' = f c + i g, h' = o tanh(c'))",
    "gru": "GRU (PyTorch's gates r, z, n: h' = (1 - z) n + z h)",
}
for _kind, _cell in CELLS.items():
    _states = ("h0", "c0")[:_cell.states]
    _outs = ", ".join(["y"] + [s[0] + "_n" for s in _states])
    register(OpDef(_kind, ("x",), _layer_attrs(_kind, False), expand=_layer_expand(_kind, False), layer=True,
                   doc=f"{_LAYER_DOCS[_kind]} over x [batch, time, features]; with return_state=true returns "
                       f"({_outs}), final states [layers * directions, batch, hidden]"))
    register(OpDef(f"{_kind}_state", ("x", *_states), _layer_attrs(_kind, True), expand=_layer_expand(_kind, True),
                   layer=True, doc=f"{_kind} starting from given states [layers * directions, batch, hidden]; "
                                   f"returns ({_outs}), so a long sequence can be fed in pieces"))
