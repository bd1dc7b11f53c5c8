"""The one test harness every op uses.

`check_forward` runs an op alone in a compiled plan and compares it with the op's NumPy reference (shape and
dtype first, then values). `check_grad` differentiates the op with the compiler's own autodiff transform and
compares with float64 central finite differences of the same compiled forward pass, with a tolerance scaled by
the magnitude of the values. Both are driven from the op registry's samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlc.autodiff import backward
from dlc.ir import GraphBuilder, TensorType, dtype_of_array
from dlc.lowering import lower
from dlc.ops import registry
from dlc.passes import PassContext, run_pipeline

TOL = {"f32": (2e-5, 2e-5), "f64": (1e-11, 1e-11)}


def _graph_for(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], with_loss: bool = False,
               rng: np.random.Generator | None = None):
    b = GraphBuilder()
    vals = [b.add_input(f"in{i}", TensorType(dtype_of_array(a), tuple(a.shape))) for i, a in enumerate(inputs)]
    outs = b.op(op, vals, **attrs)
    b.outputs = [(f"out{i}", o) for i, o in enumerate(outs)]
    if not with_loss:
        return b.build(), vals, outs
    # loss = sum_i sum(out_i * R_i) with fixed random R_i: a generic scalar that touches every output element.
    total = None
    keep = registry.get(op).differentiable_outputs
    for k, o in enumerate(outs):
        if keep is not None and k not in keep:
            continue
        t = b.type_of(o)
        if t.dtype not in ("f32", "f64"):
            continue
        weights = b.const(rng.standard_normal([int(d) for d in t.shape]), t.dtype)
        term = b.op1("sum", b.op1("mul", o, weights))
        total = term if total is None else b.op1("add", total, term)
    b.outputs = [("loss", total)]
    return b.build(), vals, outs


def run_graph(graph, arrays: list[np.ndarray], fuse: bool = False, training: bool = True) -> dict[str, np.ndarray]:
    graph = run_pipeline(graph, PassContext(training=training, fuse=fuse))
    lowered = lower(graph, [])
    outs = [np.empty(tuple(int(d) for d in t.shape), dtype=_np(t)) for t in lowered.output_types]
    by_name = {f"in{i}": a for i, a in enumerate(arrays)}
    lowered.plan.run([np.ascontiguousarray(by_name[n]) for n in lowered.input_names], outs, seed=1, step=1,
                     training=training)
    return dict(zip(lowered.output_names, outs))


def _np(t: TensorType) -> np.dtype:
    from dlc.ir import np_dtype
    return np_dtype(t.dtype)


def as_dtype(arrays: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    target = np.float32 if dtype == "f32" else np.float64
    arrays = [np.array(a) for a in arrays]  # NumPy scalars (0-d results) become real arrays
    return [a.astype(target) if np.issubdtype(a.dtype, np.floating) else a for a in arrays]


def check_forward(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], dtype: str, fuse: bool = False) -> None:
    opdef = registry.get(op)
    arrays = as_dtype(inputs, dtype)
    graph, _, _ = _graph_for(op, arrays, attrs)
    got = run_graph(graph, arrays, fuse=fuse)
    expected = opdef.reference(*arrays, **attrs)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    assert len(got) == len(expected), f"{op}: {len(got)} outputs, reference gives {len(expected)}"
    rtol, atol = TOL[dtype]
    for i, exp in enumerate(expected):
        out = got[f"out{i}"]
        exp = np.asarray(exp)
        assert out.shape == exp.shape, f"{op} output {i}: shape {out.shape}, reference {exp.shape}"
        assert out.dtype == exp.dtype, f"{op} output {i}: dtype {out.dtype}, reference {exp.dtype}"
        if out.dtype == np.bool_ or np.issubdtype(out.dtype, np.integer):
            np.testing.assert_array_equal(out, exp, err_msg=f"{op} output {i}")
        else:
            scale = max(1.0, float(np.max(np.abs(exp)))) if exp.size else 1.0
            np.testing.assert_allclose(out, exp, rtol=rtol * 10, atol=atol * 10 * scale, err_msg=f"{op} output {i}")


def check_grad(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], seed: int = 0, eps: float = 1e-6,
               rtol: float = 1e-5, atol: float = 1e-6) -> None:
    rng = np.random.default_rng(seed)
    arrays = as_dtype(inputs, "f64")
    graph, vals, _ = _graph_for(op, arrays, attrs, with_loss=True, rng=rng)
    wrt = [v for v, a in zip(vals, arrays) if a.dtype == np.float64]
    diff = backward(graph, graph.outputs[0][1], wrt)
    b = GraphBuilder(diff.graph)
    b.outputs = [("loss", graph.outputs[0][1])] + [(f"grad{i}", diff.grads[v]) for i, v in enumerate(vals)
                                                   if v in diff.grads]
    analytic = run_graph(b.build(), arrays)
    forward_only = graph

    def loss_at(xs: list[np.ndarray]) -> float:
        return float(run_graph(forward_only, xs)["loss"])

    for i, (v, a) in enumerate(zip(vals, arrays)):
        if a.dtype != np.float64:
            continue
        numeric = np.zeros_like(a)
        flat = numeric.reshape(-1)
        for j in range(a.size):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        got = analytic.get(f"grad{i}", np.zeros_like(a))
        scale = max(1.0, float(np.max(np.abs(numeric))))
        np.testing.assert_allclose(got, numeric, rtol=rtol, atol=atol * scale,
                                   err_msg=f"{op}: gradient of input {i}")
