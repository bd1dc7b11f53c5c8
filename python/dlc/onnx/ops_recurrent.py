"""LSTM, GRU and RNN as dlc's lstm_state/gru_state/rnn_state layers.

ONNX runs time-first with weights [directions, gates * hidden, in] in its gate order (LSTM i,o,f,c; GRU
z,r,h); dlc runs batch-first with [in, gates * hidden] in PyTorch's order (i,f,g,o; r,z,n). The weights are
rearranged here into the layer's parameters. What dlc's layers cannot express is rejected: other activations,
clipping, peepholes, coupled input-forget gates, per-sequence lengths, GRU with linear_before_reset=0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import converts
from .values import Node, Unsupported, literal

# dlc gate block k comes from ONNX block _FROM[op][k].
_FROM = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _blocks(w: np.ndarray, order: list[int], hidden: int) -> np.ndarray:
    """Gate blocks along axis 0 (ONNX layout) rearranged into dlc's order."""
    return np.concatenate([w[g * hidden:(g + 1) * hidden] for g in order], axis=0)


@converts("LSTM", "GRU", "RNN")
def recurrent(im: Any, node: Node) -> None:
    node.only("hidden_size", "direction", "activations", "layout", "linear_before_reset", "clip",
              "input_forget", "activation_alpha", "activation_beta")
    op = node.op
    hidden = int(node.attr("hidden_size"))
    direction = node.attr("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    acts = [a.capitalize() if a.lower() != "tanh" else "Tanh" for a in node.attr("activations", [])]
    acts = [{"Relu": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid"}.get(a, a) for a in acts]
    activation = "tanh"
    if op == "RNN":
        if acts and set(acts) - {"Tanh", "Relu"} or len(set(acts)) > 1:
            raise Unsupported(f"activations {acts} (dlc's RNN uses tanh or relu)")
        activation = "relu" if acts and acts[0] == "Relu" else "tanh"
    elif acts and acts != _DEFAULT_ACTS[op] * dirs:
        raise Unsupported(f"activations {acts} (dlc's {op} uses the default ones)")
    if node.attr("clip") is not None or node.attr("input_forget", 0):
        raise Unsupported("clip and input_forget are not supported")
    if op == "GRU" and not node.attr("linear_before_reset", 0):
        raise Unsupported("linear_before_reset=0 (dlc's GRU is PyTorch's, linear_before_reset=1)")
    if direction == "reverse":
        raise Unsupported("direction='reverse' alone (dlc runs reverse time only as part of bidirectional)")
    ins = node.inputs + [""] * (8 - len(node.inputs))
    if ins[4]:
        lens = im.const(ins[4])
        x_shape = im.tensor(ins[0]).shape
        t_axis = 1 if node.attr("layout", 0) else 0
        if lens is None or x_shape is None or not np.all(lens == x_shape[t_axis]):
            raise Unsupported("sequence_lens shorter than the sequence (dlc runs whole sequences)")
    if op == "LSTM" and ins[7]:
        raise Unsupported("peephole weights are not supported")
    w = im.need_const(ins[1], f"{op}'s W")
    r = im.need_const(ins[2], f"{op}'s R")
    gates = len(_FROM[op])
    b = im.const(ins[3]) if ins[3] else np.zeros((dirs, 2 * gates * hidden), w.dtype)
    if b is None:
        raise Unsupported(f"{op}'s B must be a constant")
    layer = im.layer_name(None, _layer_base(ins[1], node))
    for d in range(dirs):
        name = "l0" + ("_reverse" if d else "")
        order = _FROM[op]
        im.layer_param(layer, f"{name}.ih.weight", np.ascontiguousarray(_blocks(w[d], order, hidden).T))
        im.layer_param(layer, f"{name}.hh.weight", np.ascontiguousarray(_blocks(r[d], order, hidden).T))
        wb, rb = b[d][:gates * hidden], b[d][gates * hidden:]
        if op == "GRU":
            im.layer_param(layer, f"{name}.ih.bias", _blocks(wb, order, hidden))
            im.layer_param(layer, f"{name}.hh.bias", _blocks(rb, order, hidden))
        else:
            im.layer_param(layer, f"{name}.bias", _blocks(wb + rb, order, hidden))
    x = im.tensor(ins[0]).name
    batch_first = bool(node.attr("layout", 0))
    xb = x if batch_first else im.temp(f"transpose({x}, perm=[1, 0, 2])", "batch_first")
    kind = op.lower()
    states = 2 if op == "LSTM" else 1
    given = [ins[idx] for idx in (5, 6)[:states]]
    extra = (", forget_bias=0.0" if op == "LSTM" else "") + (f", activation=\"{activation}\"" if op == "RNN" else "")
    if all(given):
        state_args = [im.tensor(s).name for s in given]
        if batch_first:
            state_args = [im.temp(f"transpose({s}, perm=[1, 0, 2])", "state") for s in state_args]
        call = f"{kind}_state({xb}, {', '.join(state_args)}, {hidden}"
    elif any(given):
        raise Unsupported("an initial hidden state without an initial cell state, or the reverse")
    else:
        call = f"{kind}({xb}, {hidden}, return_state=true"
    outs = ", ".join(im.fresh(f"{layer}_{s}") for s in ["y", "h", "c"][:1 + states])
    im.lines.append(f"{outs} = {call}, bidirectional={literal(dirs == 2)}{extra}, name=\"{layer}\")")
    y, *finals = outs.split(", ")
    # y is [B, T, dirs * hidden]; ONNX's Y is [T, dirs, B, hidden] (layout 0) or [B, T, dirs, hidden].
    shape = im.tensor(ins[0]).shape
    if shape is None:
        raise Unsupported("the input's shape is unknown")
    batch, time = (shape[0], shape[1]) if batch_first else (shape[1], shape[0])
    shaped = im.temp(f"reshape({y}, [{batch}, {time}, {dirs}, {hidden}])", "y4")
    if node.outputs and node.outputs[0]:
        im.emit(node.outputs[0], shaped if batch_first else f"transpose({shaped}, perm=[1, 2, 0, 3])")
    for k, final in enumerate(finals):
        if len(node.outputs) > 1 + k and node.outputs[1 + k]:
            im.emit(node.outputs[1 + k], f"transpose({final}, perm=[1, 0, 2])" if batch_first else final)


def _layer_base(w_name: str, node: Node) -> str:
    """dlc-exported weights are named '<layer>.l0.ih.weight': the layer's name comes back from them."""
    for suffix in (".l0.ih.weight",):
        if w_name.endswith(suffix):
            return w_name[: -len(suffix)]
    return node.proto.name or node.outputs[0] or "rnn"
