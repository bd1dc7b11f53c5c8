"""Sequence models at the layer level: recurrent layers (multi-layer, bidirectional, states carried between
calls), attention and its masks, multi-head attention, positional encodings, embeddings, text data and
sampling, and the sequence models under models/ training. The primitives (lstm_seq, gru_seq, rnn_seq and
their BPTT kernels, embedding_lookup) are checked against NumPy and finite differences by test_ops.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.ops.attention import sinusoidal_table
from dlc.ops.recurrent import _gru_np, _lstm_np, _rnn_np
from dlc.text import VOCAB, sample, unigram_entropy, windows

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def recurrent_ref(kind: str, p: dict[str, np.ndarray], name: str, x: np.ndarray, layers: int, bidirectional: bool,
                  states: list[np.ndarray] | None = None, forget_bias: float = 1.0):
    """The layer composed from the primitives' NumPy references: (sequence, final states per state kind)."""
    dirs = 2 if bidirectional else 1
    n_states = 2 if kind == "lstm" else 1
    finals: list[list[np.ndarray]] = [[] for _ in range(n_states)]
    seq = x
    for layer in range(layers):
        ys = []
        for d in range(dirs):
            q = f"{name}.l{layer}{'_reverse' if d else ''}"
            w = [p[f"{q}.ih.weight"], p[f"{q}.hh.weight"]]
            hid = w[1].shape[0]
            if kind == "gru":
                biases = [p[f"{q}.ih.bias"], p[f"{q}.hh.bias"]]
            else:
                bias = p[f"{q}.bias"].copy()
                if kind == "lstm":
                    bias[hid:2 * hid] += forget_bias
                biases = [bias]
            k = layer * dirs + d
            init = [s[k] for s in states] if states else [np.zeros((x.shape[0], hid))] * n_states
            ref = {"lstm": _lstm_np, "gru": _gru_np, "rnn": _rnn_np}[kind]
            outs = ref(seq, *w, *biases, *init, reverse_time=bool(d))
            ys.append(outs[0])
            for j in range(n_states):
                finals[j].append(outs[1 + j])
        seq = np.concatenate(ys, axis=-1)
    return seq, [np.stack(f) for f in finals]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_multilayer_bidirectional_matches_reference(kind: str) -> None:
    names = "h, hn, cn" if kind == "lstm" else "h, hn"
    prog = dlc.compile(source=f"input x: f32[3, 5, 4]\n{names} = {kind}(x, 6, layers=2, bidirectional=true, "
                       f"return_state=true, return_sequences=false)\n"
                       f"s = {kind}(x, 6, layers=2, bidirectional=true, share=\"h\")\noutput {names}, s\n",
                       dtype="f64")
    x = rand(3, 5, 4)
    out = prog(x=x)
    seq, finals = recurrent_ref(kind, dict(prog.params), "h", x, 2, True)
    if kind == "lstm":
        np.testing.assert_allclose(out["cn"], finals[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["s"], seq, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["hn"], finals[0], rtol=1e-10, atol=1e-12)
    # The last-step output of a bidirectional layer: both directions' final states of the top layer.
    np.testing.assert_allclose(out["h"], np.concatenate([finals[0][-2], finals[0][-1]], axis=-1), rtol=1e-10)
    assert out["s"].shape == (3, 5, 12) and out["hn"].shape == (4, 3, 6)


def test_lstm_return_state_gives_h_and_c() -> None:
    prog = dlc.compile(source="input x: f32[2, 4, 3]\ny, hn, cn = lstm(x, 5, return_state=true)\noutput y, hn, cn\n",
                       dtype="f64")
    x = rand(2, 4, 3)
    out = prog(x=x)
    seq, (hn, cn) = recurrent_ref("lstm", dict(prog.params), "y", x, 1, False)
    for got, want in ((out["y"], seq), (out["hn"], hn), (out["cn"], cn)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["hn"][0], out["y"][:, -1])


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_state_carry_over_equals_concatenated_sequence(kind: str) -> None:
    """Feeding a sequence in two pieces, the final states of the first as the initial states of the second,
    gives exactly the outputs of one pass over the whole sequence."""
    states = "h0, c0" if kind == "lstm" else "h0"
    outs = "y, hn, cn" if kind == "lstm" else "y, hn"
    decl = "".join(f"input {s}: f32[2, B, 5]\n" for s in states.split(", "))
    prog = dlc.compile(source=f"input x: f32[B, T, 3]\n{decl}{outs} = {kind}_state(x, {states}, 5, layers=2)\n"
                       f"output {outs}\n", dtype="f64")
    x = rand(4, 9, 3)
    init = {s: rand(2, 4, 5) for s in states.split(", ")}
    whole = prog(x=x, **init)
    first = prog(x=x[:, :4], **init)
    carried = {s: first[o] for s, o in zip(states.split(", "), outs.split(", ")[1:])}
    second = prog(x=x[:, 4:], **carried)
    np.testing.assert_allclose(np.concatenate([first["y"], second["y"]], axis=1), whole["y"], rtol=1e-12, atol=1e-13)
    for o in outs.split(", ")[1:]:
        np.testing.assert_allclose(second[o], whole[o], rtol=1e-12, atol=1e-13)
    seq, _ = recurrent_ref(kind, dict(prog.params), "y", x, 2, False, states=list(init.values()))
    np.testing.assert_allclose(whole["y"], seq, rtol=1e-10, atol=1e-12)


def _finite_difference_check(prog, batch: dict[str, np.ndarray], eps: float = 1e-6, per_param: int = 4) -> None:
    """Gradients of the train-block loss against central differences, on a few entries of every parameter."""
    _, grads = prog.loss_and_grads(**batch)
    rng = np.random.default_rng(0)
    params = {k: np.array(v) for k, v in prog.params.items()}
    for name, value in params.items():
        for idx in rng.choice(value.size, size=min(per_param, value.size), replace=False):
            losses = []
            for sign in (1, -1):
                moved = value.copy()
                moved.reshape(-1)[idx] += sign * eps
                prog.set_params({name: moved})
                losses.append(prog.evaluate_batch(**batch)["loss"])
            prog.set_params({name: value})
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert abs(grads[name].reshape(-1)[idx] - numeric) <= 1e-6 * max(1.0, abs(numeric)), name


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacked_bidirectional_gradients(kind: str) -> None:
    prog = dlc.compile(source=f"input x: f32[2, 4, 3]\ninput r: f32[2, 4, 8]\nh = {kind}(x, 4, layers=2, "
                       "bidirectional=true)\noutput h\ntrain { loss = sum(h * r) }\n", dtype="f64")
    _finite_difference_check(prog, {"x": rand(2, 4, 3), "r": rand(2, 4, 8)})


# f32 per-step products take a register-blocked kernel with w_hh packed once per sequence on AVX-512 CPUs
# (step_gemm.h), the GEMM elsewhere; float64 references check both. Batch 45 splits into row blocks that are not
# whole 12-row tiles (45 rows on one thread, 22 + 23 on two), and hidden size 38 makes gate widths (152, 114, 38)
# that end inside a 32-column panel. Both kernels must also give the same bits on 1 and 2 threads.
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_f32_sequence_kernels_match_float64_references(kind: str, reverse: bool) -> None:
    from harness import _graph_for, run_graph

    from dlc.ops.recurrent import CELLS, REFERENCES, _seq_inputs
    rng = np.random.default_rng(11)
    cell, (fwd_ref, grad_ref) = CELLS[kind], REFERENCES[kind]
    attrs = {"reverse_time": reverse}
    ins = _seq_inputs(kind, rng, "f64", 45, 20, 7, 38)
    ins[2] /= np.sqrt(38)  # w_hh at its usual init scale: uniform(-1, 1) would make the tanh RNN chaotic
    outs = fwd_ref(*ins, **attrs)
    g_outs = [rng.uniform(-1, 1, o.shape) for o in outs[:1 + cell.states]]
    grad_ins = [*ins[:3], *ins[3 + cell.biases:], outs[0], *outs[1 + cell.states:], *g_outs]
    before = dlc.get_num_threads()
    try:
        cases = [(f"{kind}_seq", ins, outs), (f"{kind}_seq_grad", grad_ins, grad_ref(*grad_ins, **attrs))]
        for op, arrays, ref in cases:
            f32 = [a.astype(np.float32) for a in arrays]
            got = []
            for n in (1, 2):
                dlc.set_num_threads(n)
                res = run_graph(_graph_for(op, f32, attrs)[0], f32)
                got.append([res[f"out{i}"] for i in range(len(ref))])
            for k, (one, two, r) in enumerate(zip(*got, ref)):
                assert one.dtype == np.float32
                np.testing.assert_allclose(one, r, rtol=0, atol=1e-4 * max(1.0, np.abs(r).max()), err_msg=f"{op} {k}")
                np.testing.assert_array_equal(one, two, err_msg=f"{op} {k}")
    finally:
        dlc.set_num_threads(before)


def _attention_ref(q, k, v, keep=None):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if keep is not None:
        s = np.where(keep, s, -1e9)
    e = np.exp(s - s.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def test_attention_causal_and_padding_masks() -> None:
    prog = dlc.compile(source="input q: f32[2, 5, 4]\ninput k: f32[2, 5, 4]\ninput v: f32[2, 5, 3]\ninput m: bool[2, 5]\n"
                       "output plain = attention(q, k, v)\noutput causal = attention(q, k, v, causal=true)\n"
                       "output padded = masked_attention(q, k, v, m, causal=true)\n", dtype="f64")
    q, k, v = rand(2, 5, 4), rand(2, 5, 4), rand(2, 5, 3)
    m = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    out = prog(q=q, k=k, v=v, m=m)
    tril = np.tril(np.ones((5, 5), dtype=bool))
    np.testing.assert_allclose(out["plain"], _attention_ref(q, k, v), rtol=1e-10)
    np.testing.assert_allclose(out["causal"], _attention_ref(q, k, v, tril), rtol=1e-10)
    np.testing.assert_allclose(out["padded"], _attention_ref(q, k, v, tril & m[:, None, :]), rtol=1e-10)
    # Padded keys do not influence the output: change them and nothing moves.
    k2, v2 = k.copy(), v.copy()
    k2[1, 3:], v2[1, 3:] = 100.0, -100.0
    again = prog(q=q, k=k2, v=v2, m=m)
    np.testing.assert_allclose(again["padded"], out["padded"], rtol=1e-12)


def test_causal_attention_over_a_symbolic_length() -> None:
    """Regression: causal=true needed the sequence length at compile time (a constant triangle); with T
    symbolic the mask is `triangle`, built when the plan runs, so one program serves every length, and the
    gradient matches the bound program's."""
    src = "input x: f32[N, {t}, 4]\ninput r: f32[N, {t}, 4]\nparam w: f32[4, 4]\n" \
          "a = attention(x @ w, x, x, causal=true)\noutput a\ntrain {{ loss = sum(a * r) }}\n"
    free = dlc.compile(source=src.format(t="T"), dtype="f64")
    for t in (3, 6):
        x, r = rand(2, t, 4), rand(2, t, 4)
        tril = np.tril(np.ones((t, t), dtype=bool))
        np.testing.assert_allclose(free(x=x)["a"], _attention_ref(x @ free.params["w"], x, x, tril), rtol=1e-10)
        bound = dlc.compile(source=src.format(t=t), dtype="f64")
        bound.set_params(free.params)
        np.testing.assert_allclose(free.loss_and_grads(x=x, r=r)[1]["w"], bound.loss_and_grads(x=x, r=r)[1]["w"],
                                   rtol=1e-10)


def test_multi_head_attention_matches_reference_and_gradients() -> None:
    src = ("input x: f32[2, 6, 8]\ninput m: f32[2, 6]\ninput r: f32[2, 6, 8]\n"
           "a = masked_multi_head_attention(x, m, 8, 2, causal=true)\noutput a\ntrain { loss = sum(a * r) }\n")
    prog = dlc.compile(source=src, dtype="f64")
    p = dict(prog.params)
    assert sorted(p) == sorted(f"a.{n}.{w}" for n in "qkvo" for w in ("weight", "bias"))
    x, r = rand(2, 6, 8), rand(2, 6, 8)
    m = np.ones((2, 6))
    m[0, 4:] = 0.0
    proj = {n: x @ p[f"a.{n}.weight"] + p[f"a.{n}.bias"] for n in "qkv"}
    heads = {n: proj[n].reshape(2, 6, 2, 4).transpose(0, 2, 1, 3) for n in "qkv"}
    keep = np.tril(np.ones((6, 6), dtype=bool)) & (m[:, None, None, :] != 0)
    o = _attention_ref(heads["q"], heads["k"], heads["v"], keep).transpose(0, 2, 1, 3).reshape(2, 6, 8)
    np.testing.assert_allclose(prog(x=x, m=m)["a"], o @ p["a.o.weight"] + p["a.o.bias"], rtol=1e-9, atol=1e-12)
    _finite_difference_check(prog, {"x": x, "m": m, "r": r})


def test_positional_encodings() -> None:
    prog = dlc.compile(source="input x: f32[2, 7, 6]\noutput s = positional_encoding(x)\n"
                       "output l = positional_encoding(x, kind=\"learned\", max_len=10)\n", dtype="f64")
    x = rand(2, 7, 6)
    out = prog(x=x)
    table = sinusoidal_table(7, 6)
    angle = 3 / 10000 ** (2 / 6)  # position 3, columns 2 and 3 (i = 1)
    assert np.isclose(table[3, 2], np.sin(angle)) and np.isclose(table[3, 3], np.cos(angle))
    np.testing.assert_allclose(out["s"], x + table, rtol=1e-12)
    np.testing.assert_allclose(out["l"], x + prog.params["l.weight"][:7], rtol=1e-12)
    with pytest.raises(dlc.CompileError, match="max_len"):
        dlc.compile(source="input x: f32[2, 7, 6]\noutput l = positional_encoding(x, kind=\"learned\", max_len=5)\n")


def test_embedding_layer_and_gradient() -> None:
    prog = dlc.compile(source="input ids: i32[3, 4]\ninput r: f32[3, 4, 5]\ne = embedding(ids, 6, 5)\noutput e\n"
                       "train { loss = sum(e * r) }\n", dtype="f64")
    ids = np.array([[0, 1, 1, 5], [2, 2, 2, 0], [5, 4, 3, 1]], dtype=np.int32)
    r = rand(3, 4, 5)
    w = prog.params["e.weight"]
    assert w.shape == (6, 5) and 0.5 < w.std() < 2.0  # normal(0, 1) initialization
    np.testing.assert_array_equal(prog(ids=ids)["e"], w[ids])
    _, grads = prog.loss_and_grads(ids=ids, r=r)
    expected = np.zeros((6, 5))
    np.add.at(expected, ids.reshape(-1), r.reshape(-1, 5))
    np.testing.assert_allclose(grads["e.weight"], expected, rtol=1e-12)


@pytest.mark.parametrize("model,shape", [("lstm", (32, 64)), ("gru", (32, 64)), ("rnn", (32, 64)),
                                         ("transformer", (64, 128))])
def test_reference_models_train(model: str, shape: tuple[int, int]) -> None:
    prog = dlc.compile(ROOT / "models" / f"{model}.dlm")
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((4,) + shape).astype(np.float32), "y": rng.integers(0, 10, 4).astype(np.int32)}
    losses = [prog.train_step(**batch)["loss"] for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert prog(x=batch["x"])["logits"].shape == (4, 10)


def test_transformer_imports_its_layer_from_the_library() -> None:
    text = (ROOT / "models" / "transformer.dlm").read_text()
    assert 'from "transformer_lib.dlm" import encoder_layer' in text
    prog = dlc.compile(ROOT / "models" / "transformer.dlm")
    assert {"h.attn.q.weight", "h.ff1.weight", "h.norm2.weight"} <= set(prog.params)
    dec = dlc.compile(source=f'from "{ROOT / "models" / "transformer_lib.dlm"}" import decoder_layer\n'
                      "input x: f32[2, 5, 16]\ninput m: f32[2, 7, 16]\noutput y = decoder_layer(x, m, 16, 4, 32)\n")
    assert dec(x=rand(2, 5, 16).astype(np.float32), m=rand(2, 7, 16).astype(np.float32))["y"].shape == (2, 5, 16)


def test_char_model_text_windows_and_sampling() -> None:
    data = np.frombuffer(b"def f(x):\n    return x + 1\n" * 20, dtype=np.uint8)
    win = windows(data, 16)
    np.testing.assert_array_equal(win["x"][:, 1:], win["y"][:, :-1])
    assert win["x"].shape == ((len(data) - 1) // 16, 16)
    assert 0 < unigram_entropy(win["x"]) < np.log(VOCAB)
    src = (ROOT / "models" / "char_lstm.dlm").read_text().replace("lstm(e, 256)", "lstm(e, 32)")
    prog = dlc.compile(source=src)
    losses = [prog.train_step(**{k: v[:8] for k, v in win.items()})["loss"] for _ in range(3)]
    assert losses[-1] < losses[0]
    text = sample(prog, "def ", length=20, temperature=0.8, seed=3, window=16)
    assert text.startswith("def ") and len(text.encode("utf-8", errors="replace")) >= 20
    assert text == sample(prog, "def ", length=20, temperature=0.8, seed=3, window=16)  # seeded


def test_adding_problem_smoke() -> None:
    spec = importlib.util.spec_from_file_location("adding_problem", ROOT / "benchmarks" / "adding_problem.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    batch = mod.adding_batch(np.random.default_rng(0), 500, 50)
    assert np.all(batch["x"][..., 1].sum(1) == 2)
    assert abs(np.mean((batch["y"] - 1.0) ** 2) - mod.BASELINE_MSE) < 0.03
    result = mod.train("lstm", length=50, steps=20, hidden=8, batch=16)
    assert np.isfinite(result["mse"])
