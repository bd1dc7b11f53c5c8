"""dlc's recurrent kernels (one layer, one direction each) as ONNX LSTM/GRU/RNN nodes.

dlc runs batch-first with weights [in, gates * hidden] in PyTorch's gate order; ONNX runs time-first
(layout 0, the layout every runtime implements) with weights [directions, gates * hidden, in] in its own
order. The weights are parameters, so they are rearranged here and written under the parameters' names.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node
from .export_core import Exporter, OnnxExportError, exports, tensor_proto

# Where ONNX's gate blocks come from in dlc's layout: LSTM i,o,f,c from i,f,g,o; GRU z,r,h from r,z,n.
_ORDER = {"lstm_seq": [0, 3, 1, 2], "gru_seq": [1, 0, 2], "rnn_seq": [0]}
_ONNX_OP = {"lstm_seq": "LSTM", "gru_seq": "GRU", "rnn_seq": "RNN"}


def _reorder(w: np.ndarray, order: list[int], hidden: int) -> np.ndarray:
    """Gate blocks along the last axis, rearranged."""
    return np.concatenate([w[..., g * hidden:(g + 1) * hidden] for g in order], axis=-1)


def _zero_state(ex: Exporter, v: int) -> bool:
    """A state broadcast from a zero constant: ONNX's default initial state, so it is left out."""
    producer = ex.producers.get(v)
    if v in ex.known:
        return not np.any(ex.known[v])
    return producer is not None and producer.op == "broadcast_to" and producer.inputs[0] in ex.known \
        and not np.any(ex.known[producer.inputs[0]])


@exports("lstm_seq", "gru_seq", "rnn_seq")
def _recurrent(ex: Exporter, n: Node) -> None:
    kind = n.op
    order = _ORDER[kind]
    states = 2 if kind == "lstm_seq" else 1
    biases = 2 if kind == "gru_seq" else 1
    x, w_ih, w_hh = n.inputs[:3]
    bias_vals = list(n.inputs[3:3 + biases])
    init_states = list(n.inputs[3 + biases:3 + biases + states])
    for v in (w_ih, w_hh, *bias_vals):
        if v not in ex.known:
            raise OnnxExportError(f"{kind}: the weights must be parameters to export as ONNX {_ONNX_OP[kind]}")
    hidden = int(ex.g.values[w_hh].shape[0])
    base = ex.origin.get(w_ih, ex.fresh("rnn"))
    stem = base[: -len(".ih.weight")] if base.endswith(".ih.weight") else base
    w = _reorder(ex.known[w_ih], order, hidden).T[None]
    r = _reorder(ex.known[w_hh], order, hidden).T[None]
    if biases == 2:
        b = np.concatenate([_reorder(ex.known[bias_vals[0]], order, hidden),
                            _reorder(ex.known[bias_vals[1]], order, hidden)])[None]
    else:
        wb = _reorder(ex.known[bias_vals[0]], order, hidden)
        b = np.concatenate([wb, np.zeros_like(wb)])[None]
    names = [f"{stem}.ih.weight", f"{stem}.hh.weight", f"{stem}.bias"]
    for arr, name in zip((w, r, b), names):
        ex.inits.append(tensor_proto(np.ascontiguousarray(arr), name))
    xt = ex.add("Transpose", [ex.name(x)], perm=[1, 0, 2])[0]
    zero_axis = ex.const(np.array([0], dtype=np.int64), "axes")
    inits = ["" if _zero_state(ex, s) else ex.add("Unsqueeze", [ex.name(s), zero_axis])[0] for s in init_states]
    attrs: dict[str, object] = {"hidden_size": hidden,
                                "direction": "reverse" if n.attr("reverse_time") else "forward"}
    if kind == "gru_seq":
        attrs["linear_before_reset"] = 1
    if kind == "rnn_seq":
        attrs["activations"] = ["Relu" if n.attr("activation") == "relu" else "Tanh"]
    outs = [ex.fresh("y"), ex.fresh("y_h")] + ([ex.fresh("y_c")] if states == 2 else [])
    ex.add(_ONNX_OP[kind], [xt, *names, "", *inits], outs, **attrs)
    one_axis = ex.const(np.array([1], dtype=np.int64), "axes")
    y = ex.add("Squeeze", [outs[0], one_axis])[0]
    ex.add("Transpose", [y], [ex.out(n, 0)], perm=[1, 0, 2])
    for k in range(states):
        ex.add("Squeeze", [outs[1 + k], zero_axis], [ex.out(n, 1 + k)])
