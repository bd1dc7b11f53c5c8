"""Fusion on graphs where one value has several consumers, through autodiff: the shape that made fusion
build a cycle between groups (issue 13's VAE reproducer). Every graph must fuse and compute what the unfused
plan computes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.autodiff import backward
from dlc.ir import Graph, GraphBuilder, TensorType, np_dtype
from dlc.lowering import lower
from dlc.passes import PassContext, run_pipeline

VAE_REPRODUCER = """
input x: f32[4]
param a: f32[4] = 0.5
param b: f32[4] = 0.3
mu = x * a
lv = x * b
output z = mu + lv
train {
    loss = sum(z) + sum(lv - mu ** 2)
}
"""


def test_vae_reproducer_compiles_fused_and_matches_unfused() -> None:
    x = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    fused = dlc.compile(source=VAE_REPRODUCER, fuse=True)
    plain = dlc.compile(source=VAE_REPRODUCER, fuse=False)
    loss_f, grads_f = fused.loss_and_grads(x=x)
    loss_p, grads_p = plain.loss_and_grads(x=x)
    assert loss_f == loss_p
    for name in grads_p:
        np.testing.assert_allclose(grads_f[name], grads_p[name], rtol=1e-6, err_msg=name)
    # d/da = x - 2 mu x, d/db = 2x (z and lv each contribute x)
    np.testing.assert_allclose(grads_f["a"], x - 2 * 0.5 * x * x, rtol=1e-6)
    np.testing.assert_allclose(grads_f["b"], 2 * x, rtol=1e-6)
    assert fused.train_step(x=x)["loss"] == plain.train_step(x=x)["loss"]


UNARY = ["tanh", "sigmoid", "square", "neg", "relu"]
BINARY = ["add", "sub", "mul"]


@st.composite
def shared_value_graphs(draw: Callable[..., Any]) -> tuple[Graph, dict[str, np.ndarray]]:
    """Forward graphs of two or three chains that start as siblings (separate groups, like a VAE's mu and
    logvar) and read each other's values: each step extends one chain with an op on any of its values (so
    values have several consumers), often combined with a value of another chain; matmuls give epilogue
    groups, row sums reduction tails. The loss sums several values, and the graph is extended by its
    backward pass."""
    m, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    b = GraphBuilder()
    x = b.add_input("x", TensorType("f64", (m, n)))
    y = b.add_input("y", TensorType("f64", (m, n)))
    v = b.add_input("v", TensorType("f64", (n,)))
    w = b.add_input("w", TensorType("f64", (n, n)))
    chains = [[b.op1("mul", x, v)], [b.op1("add", y, v)], [b.op1("tanh", x)]][:draw(st.integers(2, 3))]
    pool = [c[0] for c in chains]
    for _ in range(draw(st.integers(2, 12))):
        k = draw(st.integers(0, len(chains) - 1))
        a = draw(st.sampled_from(chains[k]))
        kind = draw(st.sampled_from(["unary", "cross", "cross", "matmul", "rowsum", "scalar"]))
        if kind == "unary":
            out = b.op1(draw(st.sampled_from(UNARY)), a)
        elif kind == "cross":
            other = draw(st.sampled_from([c for j, c in enumerate(chains) if j != k]))
            out = b.op1(draw(st.sampled_from(BINARY)), a, draw(st.sampled_from(other)))
        elif kind == "matmul":
            out = b.op1("matmul", a, w)
        elif kind == "rowsum":
            out = b.op1("add", a, b.op1("sum", a, axis=(1,), keepdims=True))
        else:
            out = b.op1("mul_scalar", a, value=draw(st.sampled_from([0.5, -2.0])))
        chains[k].append(out)
        pool.append(out)
    terms = [pool[-1]] + draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
    loss = None
    for t in terms:
        term = b.op1("sum", b.op1(draw(st.sampled_from(["tanh", "square", "neg"])), t))
        loss = term if loss is None else b.op1("add", loss, term)
    b.outputs = [("loss", loss), ("last", pool[-1])]
    wrt = (x, y, v, w)
    diff = backward(b.build(), loss, list(wrt))
    gb = GraphBuilder(diff.graph)
    gb.outputs = list(b.outputs) + [(f"grad{k}", diff.grads[t]) for k, t in enumerate(wrt) if t in diff.grads]
    inputs = {"x": rng.uniform(-1, 1, (m, n)), "y": rng.uniform(-1, 1, (m, n)), "v": rng.uniform(-1, 1, n),
              "w": rng.uniform(-1, 1, (n, n))}
    return gb.build(), inputs


def _run(graph: Graph, inputs: dict[str, np.ndarray], fuse: bool) -> dict[str, np.ndarray]:
    lowered = lower(run_pipeline(graph, PassContext(training=True, fuse=fuse)), [])
    outs = [np.empty(tuple(int(d) for d in t.shape), dtype=np_dtype(t.dtype)) for t in lowered.output_types]
    lowered.plan.run([inputs[n] for n in lowered.input_names], outs, seed=1, step=1, training=True)
    return dict(zip(lowered.output_names, outs))


# Derandomized: the same examples every run, so a failure is reproducible from the test alone.
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shared_value_graphs())
def test_shared_values_through_autodiff_fuse_without_cycles(case: tuple[Graph, dict[str, np.ndarray]]) -> None:
    graph, inputs = case
    fused = _run(graph, inputs, fuse=True)
    plain = _run(graph, inputs, fuse=False)
    for name in plain:
        np.testing.assert_allclose(fused[name], plain[name], rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} of\n{graph.dump()}")
