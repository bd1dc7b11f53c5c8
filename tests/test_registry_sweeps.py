"""Registry-wide audits for two classes of defect (issue 14):

- a dtype that does not follow the model's dtype: every user op, compiled from .dlm text with dtype="f64",
  must leave no f32 value in the forward graph or in its gradient graph, and must run;
- a gradient rule that breaks under broadcasting or transposition flags: every matmul-like op (matmul with
  each pair of flags over ranks 2-4 with broadcast batches, dense over rank 3-4, attention with broadcast
  batches) against float64 finite differences.

Primitive ops take their sample inputs from the registry; composites and layers have none there, so
COMPOSITE_SAMPLES below gives them one call each, and a test fails when a new user op has neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlc
from dlc.ops import registry

S = [2, 3, 4]  # a small float operand, [batch, time, features] for the sequence layers
IMG = [2, 2, 5, 5]
# composite/layer op -> (operand shapes and dtypes, attributes)
COMPOSITE_SAMPLES: dict[str, tuple[list[tuple[str, list[int]]], dict[str, Any]]] = {
    "accuracy": ([("f32", [3, 4]), ("i32", [3])], {}),
    "attention": ([("f32", S), ("f32", S), ("f32", S)], {"causal": True}),
    "batch_norm": ([("f32", IMG)], {}),
    "bernoulli": ([], {"shape": [3, 4], "p": 0.3}),
    "binary_cross_entropy": ([("f32", [3, 4]), ("f32", [3, 4])], {}),
    "conv2d": ([("f32", IMG)], {"filters": 3}),
    "conv_transpose2d": ([("f32", IMG)], {"filters": 3, "stride": 2}),
    "cross_attention": ([("f32", S), ("f32", [2, 5, 4])], {"d_model": 4, "heads": 2}),
    "cross_entropy": ([("f32", [3, 4]), ("i32", [3])], {"label_smoothing": 0.1}),
    "dense": ([("f32", S)], {"units": 5, "activation": "gelu"}),
    "dropout": ([("f32", S)], {"rate": 0.25}),
    "embedding": ([("i32", [2, 3])], {"vocab": 6, "dim": 4}),
    "full": ([], {"shape": [2, 3], "value": 1.5}),
    "gru": ([("f32", S)], {"hidden": 3, "bidirectional": True}),
    "gru_state": ([("f32", S), ("f32", [1, 2, 3])], {"hidden": 3}),
    "huber": ([("f32", [3, 4]), ("f32", [3, 4])], {}),
    "kl_divergence": ([("f32", [3, 4]), ("f32", [3, 4])], {}),
    "layer_norm": ([("f32", S)], {}),
    "lstm": ([("f32", S)], {"hidden": 3, "return_sequences": False}),
    "lstm_state": ([("f32", S), ("f32", [1, 2, 3]), ("f32", [1, 2, 3])], {"hidden": 3}),
    "mae": ([("f32", [3, 4]), ("f32", [3, 4])], {}),
    "masked_attention": ([("f32", S), ("f32", S), ("f32", S), ("bool", [2, 3])], {}),
    "masked_multi_head_attention": ([("f32", S), ("bool", [2, 3])], {"d_model": 4, "heads": 2}),
    "mse": ([("f32", [3, 4]), ("f32", [3, 4])], {}),
    "multi_head_attention": ([("f32", S)], {"d_model": 4, "heads": 2, "causal": True}),
    "nll": ([("f32", [3, 4]), ("i32", [3])], {}),
    "normal": ([], {"shape": [3, 4], "std": 2.0}),
    "one_hot": ([("i32", [3])], {"num_classes": 5}),
    "ones": ([], {"shape": [4]}),
    "positional_encoding": ([("f32", S)], {"kind": "learned", "max_len": 8}),
    "rnn": ([("f32", S)], {"hidden": 3}),
    "rnn_state": ([("f32", S), ("f32", [1, 2, 3])], {"hidden": 3}),
    "uniform": ([], {"shape": [2, 5], "low": -1.0}),
    "zeros": ([], {"shape": [2, 2]}),
}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def _np_dtype_name(arr: np.ndarray) -> str:
    return {np.float32: "f32", np.float64: "f32", np.int32: "i32", np.int64: "i64", np.bool_: "bool"}[arr.dtype.type]


def _source(op: str, operands: list[tuple[str, list[int]]], attrs: dict[str, Any], n_out: int) -> str:
    """A model calling `op` once on declared inputs; float operands are declared f32 (f64 mode widens them)."""
    lines = [f"input in{i}: {dt}[{', '.join(str(d) for d in shape)}]" for i, (dt, shape) in enumerate(operands)]
    args = [f"in{i}" for i in range(len(operands))] + [f"{k}={_literal(v)}" for k, v in attrs.items()]
    outs = ", ".join(f"out{i}" for i in range(n_out))
    lines += [f"{outs} = {op}({', '.join(args)})", f"output {outs}"]
    return "\n".join(lines) + "\n"


def _user_cases() -> list:
    cases = []
    for name, op in sorted(registry.all_ops().items()):
        if not op.user:
            continue
        if op.is_primitive and op.samples is not None:
            for k, s in enumerate(op.samples(np.random.default_rng(0), "f32")):
                operands = [(_np_dtype_name(np.asarray(a)), list(np.shape(a))) for a in s.inputs]
                cases.append(pytest.param(name, operands, dict(s.attrs), id=f"{name}-{k}"))
        elif name in COMPOSITE_SAMPLES:
            operands, attrs = COMPOSITE_SAMPLES[name]
            cases.append(pytest.param(name, operands, attrs, id=name))
    return cases


def _compile_call(op: str, operands: list[tuple[str, list[int]]], attrs: dict[str, Any], dtype: str):
    for n_out in range(1, 5):  # the number of results is the op's own business: try tuple sizes
        try:
            return dlc.compile(source=_source(op, operands, attrs, n_out), dtype=dtype)
        except dlc.CompileError as e:
            if "names on the left" not in str(e) and "is not a tensor" not in str(e):
                raise
    raise AssertionError(f"{op}: could not bind its results")


def _arrays(operands: list[tuple[str, list[int]]], dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for i, (dt, shape) in enumerate(operands):
        if dt == "f32":
            out[f"in{i}"] = rng.uniform(0.1, 0.9, tuple(shape)).astype(np.float64 if dtype == "f64" else np.float32)
        elif dt == "bool":
            out[f"in{i}"] = np.ones(tuple(shape), dtype=bool)
        else:
            out[f"in{i}"] = rng.integers(0, 3, tuple(shape)).astype(np.int32 if dt == "i32" else np.int64)
    return out


def test_every_user_op_has_an_f64_sample() -> None:
    missing = [n for n, op in registry.all_ops().items() if op.user and not op.is_primitive
               and n not in COMPOSITE_SAMPLES]
    missing += [n for n, op in registry.all_ops().items() if op.user and op.is_primitive and op.samples is None]
    assert not missing, f"user ops without samples for the f64 sweep: {missing}"


@pytest.mark.parametrize("op,operands,attrs", _user_cases())
def test_f64_mode_leaves_no_f32(op: str, operands: list, attrs: dict) -> None:
    program = _compile_call(op, operands, attrs, "f64")
    narrow = {str(t) for t in program.graph.values.values() if t.dtype == "f32"}
    assert not narrow, f"{op} in f64 mode still has f32 values: {sorted(narrow)}"
    arrays = _arrays(operands, "f64")
    outs = program(**{n: arrays[n] for n in program.inputs if n in arrays})
    assert all(o.dtype != np.float32 for o in outs.values())
    float_outs = [n for n, s in program.outputs.items() if s.dtype == "f64"]
    if not float_outs or not registry.get(op).differentiable or op in ("accuracy",):
        return
    # The gradient graph of the same call, in f64 mode, is f64 throughout as well.
    loss = " + ".join(f"sum(square({n}))" for n in float_outs)
    program.configure(loss=loss)
    tg = program.trainer.training_graph("grads", program.bind_dims(arrays, list(program.inputs)))
    narrow = {str(t) for t in tg.graph.values.values() if t.dtype == "f32"}
    assert not narrow, f"{op}'s gradient graph in f64 mode has f32 values: {sorted(narrow)}"


# ---- broadcast and transposed variants of the matmul-like ops, against finite differences ----

def _fd_check(source: str, arrays: dict[str, np.ndarray], wrt: list[str], eps: float = 1e-6) -> None:
    """d loss / d input from the compiled gradient plan against central differences of the compiled loss."""
    program = dlc.compile(source=source, dtype="f64")
    _, grads = program.loss_and_grads(**arrays)
    for name in wrt:
        a = arrays[name]
        numeric = np.zeros_like(a)
        for j in range(a.size):
            plus, minus = a.copy(), a.copy()
            plus.reshape(-1)[j] += eps
            minus.reshape(-1)[j] -= eps
            lp = program.evaluate_batch(**{**arrays, name: plus})["loss"]
            lm = program.evaluate_batch(**{**arrays, name: minus})["loss"]
            numeric.reshape(-1)[j] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=f"d loss / d {name}")


def _decl(name: str, shape: tuple[int, ...]) -> str:
    return f"input {name}: f32[{', '.join(map(str, shape))}]"


MATMUL_RANKS = [((3, 4), (4, 2)), ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)), ((2, 3, 4), (2, 4, 2)),
                ((2, 1, 3, 4), (3, 4, 2)), ((1, 3, 4), (2, 4, 2))]


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("shapes", MATMUL_RANKS, ids=lambda s: f"{len(s[0])}x{len(s[1])}-{s[0][0]}")
def test_matmul_gradient_sweep(shapes: tuple, trans_a: bool, trans_b: bool) -> None:
    sa, sb = (tuple(s) for s in shapes)
    if trans_a:
        sa = sa[:-2] + (sa[-1], sa[-2])
    if trans_b:
        sb = sb[:-2] + (sb[-1], sb[-2])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    out = np.matmul(np.swapaxes(a, -1, -2) if trans_a else a, np.swapaxes(b, -1, -2) if trans_b else b)
    r = rng.standard_normal(out.shape)
    source = "\n".join([_decl("a", sa), _decl("b", sb), _decl("r", r.shape),
                        f"output y = matmul(a, b, trans_a={_literal(trans_a)}, trans_b={_literal(trans_b)})",
                        "train {", "loss = sum(y * r)", "input_grads = [a, b]", "}"])
    _fd_check(source, {"a": a, "b": b, "r": r}, ["a", "b"])


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 1, 2, 4)])
def test_dense_gradient_over_leading_axes(shape: tuple) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    source = "\n".join([_decl("x", shape), "output y = dense(x, 3)",
                        "train {", "loss = sum(y * y)", "input_grads = [x]", "}"])
    _fd_check(source, {"x": x}, ["x"])


def test_attention_gradient_with_broadcast_batches() -> None:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((1, 5, 4)), rng.standard_normal((5, 2))
    source = "\n".join([_decl("q", q.shape), _decl("k", k.shape), _decl("v", v.shape),
                        "output y = attention(q, k, v)",
                        "train {", "loss = sum(y * y)", "input_grads = [q, k, v]", "}"])
    _fd_check(source, {"q": q, "k": k, "v": v}, ["q", "k", "v"])


# ---- the two reproducers from the issue ----

def test_one_hot_follows_f64_mode() -> None:
    program = dlc.compile(source="input ids: i32[N]\nparam w: f32[5, 3]\noutput y = one_hot(ids, 5) @ w\n",
                          dtype="f64")
    y = program(ids=np.array([0, 4, 2], np.int32))["y"]
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, program.params["w"][[0, 4, 2]])


def test_matmul_trans_b_gradient_with_rank3_a_and_rank2_b() -> None:
    source = ("input h: f32[N, 3, 4]\nparam w: f32[5, 4]\noutput y = matmul(h, w, trans_b=true)\n"
              "train {\n    loss = sum(y * y)\n}\n")
    program = dlc.compile(source=source, dtype="f64")
    h = np.random.default_rng(0).standard_normal((6, 3, 4))
    _, grads = program.loss_and_grads(h=h)
    w = np.asarray(program.params["w"])
    y = h @ w.T
    np.testing.assert_allclose(grads["w"], np.einsum("bmn,bmk->nk", 2 * y, h), rtol=1e-12)


def test_scalar_inputs_and_parameters_stay_rank_0() -> None:
    """Found by the f64 sweep: np.ascontiguousarray made 0-d inputs and parameters 1-d."""
    program = dlc.compile(source="param s: f32[] = 2.0\ninput x: f32[]\noutput y = x * s\n")
    assert program.params["s"].shape == ()
    assert float(program(x=np.array(3.0, np.float32))["y"]) == 6.0
