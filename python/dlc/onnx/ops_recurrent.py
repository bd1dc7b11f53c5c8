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
    partner = _reverse_partner(im, node, ins) if direction == "forward" else None
    if partner is not None:  # dlc's own export of a bidirectional layer: one node per direction
        w, r, b = (np.concatenate([a, im.const(partner.input[k])], axis=0) for k, a in ((1, w), (2, r), (3, b)))
        dirs = 2
    layer = im.layer_name(None, _layer_base(ins[1], node))
    batch_first = bool(node.attr("layout", 0))
    if direction == "reverse" or (op == "GRU" and not node.attr("linear_before_reset", 0)):
        # dlc's fused layers run forward (or both ways) with PyTorch's GRU; these run as unrolled steps.
        _unrolled(im, node, layer, hidden, dirs, direction == "reverse", w, r, b, ins, batch_first, activation)
        return
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
    im.statement(f"{outs} = {call}, bidirectional={literal(dirs == 2)}{extra}, name=\"{layer}\")")
    y, *finals = outs.split(", ")
    # y is [B, T, dirs * hidden]; ONNX's Y is [T, dirs, B, hidden] (layout 0) or [B, T, dirs, hidden].
    shape = im.tensor(ins[0]).shape
    if shape is None:
        raise Unsupported("the input's shape is unknown")
    batch, time = (shape[0], shape[1]) if batch_first else (shape[1], shape[0])
    shaped = im.temp(f"reshape({y}, [{im.dim_text(batch)}, {im.dim_text(time)}, {dirs}, {hidden}])", "y4")
    full_y = shaped if batch_first else f"transpose({shaped}, perm=[1, 2, 0, 3])"
    if partner is None:
        if node.outputs and node.outputs[0]:
            im.emit(node.outputs[0], full_y)
        for k, final in enumerate(finals):
            if len(node.outputs) > 1 + k and node.outputs[1 + k]:
                im.emit(node.outputs[1 + k], f"transpose({final}, perm=[1, 0, 2])" if batch_first else final)
        return
    full_y = im.temp(full_y, "y_both")
    for d, proto in enumerate((node.proto, partner)):  # direction d of Y [T, 2, B, H] and of each final state
        outs = list(proto.output) + [""] * 3
        if outs[0]:
            im.emit(outs[0], f"slice({full_y}, 1, {d}, {d + 1})")
        for k, final in enumerate(finals):
            if outs[1 + k]:
                im.emit(outs[1 + k], f"slice({final}, 0, {d}, {d + 1})")
        if d:
            im.absorbed.add(id(partner))


def _reverse_partner(im: Any, node: Node, ins: list[str]) -> Any | None:
    """The reverse-direction node of dlc's export of a bidirectional layer: same op, hidden size and input,
    weights `<layer>.l0_reverse.*` beside this node's `<layer>.l0.*`, no initial states (as dlc exports
    zero states), so the pair imports as one bidirectional layer keeping the parameter names."""
    if not ins[1].endswith(".l0.ih.weight") or any(ins[4:8]) or node.attr("layout", 0):
        return None
    stem = ins[1][: -len(".l0.ih.weight")]
    for proto in im.model.graph.node:
        attrs = {a.name: a for a in proto.attribute}
        if proto.op_type != node.op or len(proto.input) < 4 or proto.input[1] != f"{stem}.l0_reverse.ih.weight" \
                or any(n for n in list(proto.input)[4:]) or "direction" not in attrs \
                or attrs["direction"].s != b"reverse" or attrs["hidden_size"].i != int(node.attr("hidden_size")) \
                or set(attrs) - {"direction", "hidden_size", "linear_before_reset", "activations"} \
                or any(im.const(n) is None for n in proto.input[1:4]):
            continue
        if _same_value(im, ins[0], proto.input[0]) and id(proto) not in im.visited:
            return proto
    return None


def _same_value(im: Any, a: str, b: str, depth: int = 0) -> bool:
    """Whether two ONNX tensors hold the same value: the same name, or the same Transpose of the same value."""
    if a == b:
        return True
    pa, pb = im.producers.get(a), im.producers.get(b)
    if pa is None or pb is None or depth > 4 or pa.op_type != "Transpose" or pb.op_type != "Transpose":
        return False
    return list(pa.attribute) == list(pb.attribute) and _same_value(im, pa.input[0], pb.input[0], depth + 1)


def _layer_base(w_name: str, node: Node) -> str:
    """dlc-exported weights are named '<layer>.l0.ih.weight': the layer's name comes back from them."""
    for suffix in (".l0.ih.weight",):
        if w_name.endswith(suffix):
            return w_name[: -len(suffix)]
    return node.proto.name or node.outputs[0] or "rnn"


def _unrolled(im: Any, node: Node, layer: str, hidden: int, dirs: int, reverse: bool, w: np.ndarray,
              r: np.ndarray, b: np.ndarray, ins: list[str], batch_first: bool, activation: str) -> None:
    """The recurrence written out step by step (needs a static sequence length), in ONNX's gate order with
    its own parameters: GRU with linear_before_reset=0 and single reverse-direction layers."""
    op, h_ = node.op, hidden
    x = im.tensor(ins[0])
    shape = x.static(f"an unrolled {op} (sequence length)") if x.shape is None else x.shape
    steps = shape[1] if batch_first else shape[0]
    if not isinstance(steps, int):
        raise Unsupported(f"an unrolled {op} needs a static sequence length")
    xb = x.name if batch_first else im.temp(f"transpose({x.name}, perm=[1, 0, 2])", "batch_first")
    gates = len(_FROM[op])
    lbr = bool(node.attr("linear_before_reset", 0))
    ys, finals_h, finals_c = [], [], []
    for d in range(dirs):
        wt = im.param(np.ascontiguousarray(w[d].T), f"{layer}_W{d}")
        wb = im.param(b[d][:gates * h_].copy(), f"{layer}_Wb{d}")
        rt = r[d].T
        rb = b[d][gates * h_:]
        if op == "GRU":  # the candidate's recurrent product is taken separately (after or before the reset)
            r_zr, r_h = im.param(np.ascontiguousarray(rt[:, :2 * h_]), f"{layer}_Rzr{d}"), \
                im.param(np.ascontiguousarray(rt[:, 2 * h_:]), f"{layer}_Rh{d}")
            rb_zr, rb_h = im.param(rb[:2 * h_].copy(), f"{layer}_Rbzr{d}"), im.param(rb[2 * h_:].copy(), f"{layer}_Rbh{d}")
        else:
            r_all, rb_all = im.param(np.ascontiguousarray(rt), f"{layer}_R{d}"), im.param(rb.copy(), f"{layer}_Rb{d}")
        backwards = reverse or d == 1
        order = list(range(steps))[::-1] if backwards else list(range(steps))
        xw = {t: im.temp(f"squeeze(slice({xb}, 1, {t}, {t + 1}), [1]) @ {wt} + {wb}", "xw") for t in order}
        h = _initial(im, ins[5], d, batch_first) if ins[5] else im.temp(f"slice({xw[order[0]]}, 1, 0, {h_}) * 0.0",
                                                                       "h0")
        c = None
        if op == "LSTM":
            c = _initial(im, ins[6], d, batch_first) if len(ins) > 6 and ins[6] else \
                im.temp(f"slice({xw[order[0]]}, 1, 0, {h_}) * 0.0", "c0")
        out: dict[int, str] = {}
        for t in order:
            part = lambda v, k: f"slice({v}, 1, {k * h_}, {(k + 1) * h_})"  # noqa: E731
            if op == "LSTM":
                g = im.temp(f"{xw[t]} + {h} @ {r_all} + {rb_all}", "gates")
                i, o, f = (im.temp(f"sigmoid({part(g, k)})", n) for k, n in ((0, "i"), (1, "o"), (2, "f")))
                cand = im.temp(f"tanh({part(g, 3)})", "cand")
                c = im.temp(f"{f} * {c} + {i} * {cand}", "c")
                h = im.temp(f"{o} * tanh({c})", "h")
            elif op == "RNN":
                h = im.temp(f"{activation}({xw[t]} + {h} @ {r_all} + {rb_all})", "h")
            else:
                hz = im.temp(f"{h} @ {r_zr} + {rb_zr}", "hzr")
                z = im.temp(f"sigmoid({part(xw[t], 0)} + {part(hz, 0)})", "z")
                rr = im.temp(f"sigmoid({part(xw[t], 1)} + {part(hz, 1)})", "r")
                rec = f"{rr} * ({h} @ {r_h} + {rb_h})" if lbr else f"({rr} * {h}) @ {r_h} + {rb_h}"
                cand = im.temp(f"tanh({part(xw[t], 2)} + {rec})", "cand")
                h = im.temp(f"(1.0 - {z}) * {cand} + {z} * {h}", "h")
            out[t] = h
        ys.append(im.temp(f"concat({', '.join(f'unsqueeze({out[t]}, 1)' for t in range(steps))}, axis=1)"
                          if steps > 1 else f"unsqueeze({out[0]}, 1)", "y_dir"))
        finals_h.append(h)
        finals_c.append(c)
    y = im.temp(f"concat({', '.join(f'unsqueeze({v}, 2)' for v in ys)}, axis=2)" if dirs > 1
                else f"unsqueeze({ys[0]}, 2)", "y4")
    if node.outputs and node.outputs[0]:
        im.emit(node.outputs[0], y if batch_first else f"transpose({y}, perm=[1, 2, 0, 3])")
    for k, finals in enumerate([finals_h, finals_c][: 2 if op == "LSTM" else 1]):
        if len(node.outputs) > 1 + k and node.outputs[1 + k]:
            stacked = f"concat({', '.join(f'unsqueeze({v}, 0)' for v in finals)}, axis=0)" if dirs > 1 \
                else f"unsqueeze({finals[0]}, 0)"
            im.emit(node.outputs[1 + k], f"transpose({im.temp(stacked, 'state')}, perm=[1, 0, 2])"
                    if batch_first else stacked)


def _initial(im: Any, name: str, d: int, batch_first: bool) -> str:
    """Direction d's initial state [B, H] from ONNX's [dirs, B, H] (or [B, dirs, H] with layout=1)."""
    s = im.tensor(name).name
    axis = 1 if batch_first else 0
    return im.temp(f"squeeze(slice({s}, {axis}, {d}, {d + 1}), [{axis}])", "state0")
