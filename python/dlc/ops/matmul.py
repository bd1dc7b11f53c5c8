"""Matrix products. `matmul` is the one op with the out-elementwise-fusable pattern here: fusion hands it an
epilogue program (bias, activation, residual) that runs on each finished GEMM block."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import broadcast_shapes, dim_mul
from ..errors import ShapeError
from ..int8 import step_ints
from ..ir import TensorType
from .common import need_float, rand, same_dtype, sum_to
from .registry import AttrSpec, OpDef, Pattern, ReducedPrecision, Sample, register


def _mat_dims(t: TensorType, trans: bool) -> tuple[Any, Any]:
    return (t.shape[-1], t.shape[-2]) if trans else (t.shape[-2], t.shape[-1])


def _matmul_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    a, b = types
    dtype = same_dtype("", types)
    need_float("", a)
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"operands need rank >= 2 (got {a} and {b}); reshape vectors to [1, n] or [n, 1]")
    m, k = _mat_dims(a, attrs["trans_a"])
    k2, n = _mat_dims(b, attrs["trans_b"])
    if k != k2:
        raise ShapeError(f"inner dimensions differ: {a} @ {b} ({k} vs {k2})")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [TensorType(dtype, tuple(batch) + (m, n))]


def _matmul_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    A, B = node.inputs
    g = gs[0]
    ta, tb = node.attr("trans_a"), node.attr("trans_b")
    at, bt = b.type_of(A), b.type_of(B)
    # A weight shared across a batch ([batch, M, K] @ [K, N]): fold the batch into M, one GEMM for dB.
    if bt.rank == 2 and at.rank > 2 and not ta:
        rows = at.shape[0]
        for d in at.shape[1:-2]:
            rows = dim_mul(rows, d)
        a2 = b.op1("reshape", A, shape=(dim_mul(rows, at.shape[-2]), at.shape[-1]))
        g2 = b.op1("reshape", g, shape=(dim_mul(rows, at.shape[-2]), b.type_of(g).shape[-1]))
        gb = b.op1("matmul", g2, a2, trans_a=True) if tb else b.op1("matmul", a2, g2, trans_a=True)
        ga = b.op1("matmul", g, B, trans_b=not tb)
        return [ga, gb]
    if not ta and not tb:
        ga, gb = b.op1("matmul", g, B, trans_b=True), b.op1("matmul", A, g, trans_a=True)
    elif not ta and tb:
        ga, gb = b.op1("matmul", g, B), b.op1("matmul", g, A, trans_a=True)
    elif ta and not tb:
        ga, gb = b.op1("matmul", B, g, trans_b=True), b.op1("matmul", A, g)
    else:
        ga, gb = b.op1("matmul", B, g, trans_a=True, trans_b=True), b.op1("matmul", g, A, trans_a=True,
                                                                           trans_b=True)
    return [sum_to(b, ga, at.shape), sum_to(b, gb, bt.shape)]


def _matmul_np(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    a = np.swapaxes(a, -1, -2) if trans_a else a
    b = np.swapaxes(b, -1, -2) if trans_b else b
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.result_type(a, b))


def _matmul_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    r = lambda *s: rand(rng, s, dt)  # noqa: E731
    return [Sample([r(3, 4), r(4, 5)]), Sample([r(1, 1), r(1, 7)]), Sample([r(2, 3, 4), r(4, 6)]),
            Sample([r(2, 1, 3, 4), r(3, 4, 5)]), Sample([r(4, 3), r(4, 5)], {"trans_a": True}),
            Sample([r(3, 4), r(5, 4)], {"trans_b": True}),
            Sample([r(2, 4, 3), r(2, 5, 4)], {"trans_a": True, "trans_b": True}),
            Sample([r(17, 33), r(33, 19)])]


def _weight_matmul(node: Any, types: list[TensorType]) -> bool:
    """A dense layer's product, x @ W with one f32 matrix W shared by every row: the form of the reduced-precision
    kernels (matmul_cpu.cpp's one tall GEMM)."""
    return (not node.attr("trans_a") and types[1].rank == 2 and types[0].dtype == "f32"
            and types[1].dtype == "f32")


def _matmul_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    """[trans_a, trans_b], and for int8 the activation quantization's [zero point, scale bits] (dlc/int8.py)."""
    ints = [int(node.attr("trans_a")), int(node.attr("trans_b"))]
    if node.attr("precision") == "int8":
        ints += step_ints(node.attr("precision_data"))
    return ints, []


register(OpDef("matmul", ("a", "b"),
               (AttrSpec("trans_a", "bool", False, doc="use a's last two axes transposed"),
                AttrSpec("trans_b", "bool", False, doc="use b's last two axes transposed")),
               infer=_matmul_infer, pattern=Pattern.OUT_ELEMENTWISE_FUSABLE, kernel="matmul",
               lower=_matmul_lower,
               grad=_matmul_grad, reference=_matmul_np, samples=_matmul_samples,
               reduced_precision=ReducedPrecision(1, (("bf16", "matmul_bf16"), ("int8", "matmul_int8")), _weight_matmul),
               doc="batched matrix product with NumPy batch broadcasting (also the infix @)"))
