"""Fusion reads what it knows about an op from the op registry: a new epilogue head is one registry field
(pattern=OUT_ELEMENTWISE_FUSABLE) plus a kernel that runs the epilogue program; the registry refuses an op
whose fusion facts contradict its pattern."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from dlc.ir import GraphBuilder, TensorType
from dlc.lowering import lower, make_units
from dlc.ops import registry
from dlc.ops.registry import OpDef, Pattern
from dlc.passes import PassContext, run_pipeline


def _gemm_infer(types: list[TensorType], attrs: dict[str, object]) -> list[TensorType]:
    a, b = types
    return [TensorType(a.dtype, (a.shape[0], b.shape[1]))]


@pytest.fixture
def toy_head() -> Iterator[str]:
    """A head of its own: a plain 2-D product run by the GEMM kernel (whose ints are [trans_a, trans_b], then
    the epilogue's length and program). Nothing else about it is written anywhere but this record."""
    registry.register(OpDef("toy_gemm", ("a", "b"), infer=_gemm_infer, pattern=Pattern.OUT_ELEMENTWISE_FUSABLE,
                            kernel="matmul", lower=lambda n, t: ([0, 0], []), user=False, doc="test head"))
    yield "toy_gemm"
    registry.unregister("toy_gemm")


def _graph(head: str):
    b = GraphBuilder()
    x = b.add_input("x", TensorType("f32", (5, 7)))
    w = b.add_input("w", TensorType("f32", (7, 3)))
    bias = b.add_input("bias", TensorType("f32", (3,)))
    y = b.op1("relu", b.op1("add", b.op1(head, x, w), bias))
    b.outputs = [("y", y)]
    return b.build()


def test_a_registered_head_takes_its_epilogue(toy_head: str) -> None:
    graph = run_pipeline(_graph(toy_head), PassContext())
    units = [u for u in make_units(graph) if u.kind != "view"]
    assert [(u.kind, [n.op for n in u.nodes]) for u in units] == [("head", [toy_head, "add", "relu"])]
    lowered = lower(graph, [])
    assert [s.kernel for s in lowered.steps] == ["matmul"]
    rng = np.random.default_rng(0)
    x, w, bias = (rng.standard_normal(s).astype(np.float32) for s in ((5, 7), (7, 3), (3,)))
    out = np.empty((5, 3), np.float32)
    lowered.plan.run([x, w, bias], [out], seed=0, step=0, training=False)
    np.testing.assert_allclose(out, np.maximum(x @ w + bias, 0), rtol=1e-5, atol=1e-5)


def test_an_opaque_op_heads_nothing(toy_head: str) -> None:
    """The same graph with matmul fuses the same way, and a product declared opaque would not: the pattern
    alone decides (an opaque op's kernel knows no epilogue)."""
    graph = run_pipeline(_graph("matmul"), PassContext())
    assert [u.kind for u in make_units(graph) if u.kind != "view"] == ["head"]
    assert not registry.get("conv2d_grad_input").epilogue_head
    assert registry.get("conv2d_core").epilogue_head and registry.get("matmul").epilogue_head


def test_registry_refuses_contradicting_fusion_facts() -> None:
    with pytest.raises(ValueError, match="needs an evaluator instruction"):
        registry.register(OpDef("toy_bad_ew", ("x",), infer=lambda t, a: t, pattern=Pattern.ELEMENTWISE))
    with pytest.raises(ValueError, match="only a reduction"):
        registry.register(OpDef("toy_bad_tail", ("x",), infer=lambda t, a: t, tail=lambda n, s: 0))
    with pytest.raises(ValueError, match="needs its kernel"):
        registry.register(OpDef("toy_bad_head", ("x",), infer=lambda t, a: t,
                                pattern=Pattern.OUT_ELEMENTWISE_FUSABLE))
    assert all(registry.lookup(n) is None for n in ("toy_bad_ew", "toy_bad_tail", "toy_bad_head"))
