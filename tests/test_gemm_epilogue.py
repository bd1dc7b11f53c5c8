"""The GEMM's fused epilogue as a prepared program (csrc/kernels/gemm/gemm_epilogue.h), on each register tile
in L1 or on finished blocks: every epilogue kind the fusion pass produces must give what the unfused graph
gives, in each form, on edge tiles (M and N not multiples of any register tile: 8x32 / 8x16 on the avx512 path,
6x16 / 6x8 on avx2 and scalar), on each GEMM path, in f32 and f64, and the same bits run to run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dlc
from dlc import _core
from test_runtime import GEMM_ISAS as ISAS
from test_runtime import forced_gemm_isa as gemm_path

# (rows, K, N): few rows (the avx512 path reads B unpacked), many rows and several K blocks (partial sums in C
# before the last block: the epilogue runs on finished blocks), edge tiles everywhere, one column (the
# matrix-vector path's blocks), one row wider than the evaluator's 256-element piece and fewer rows than any
# register tile with several K blocks (both run row by row).
SHAPES = [(13, 37, 45), (133, 300, 70), (70, 20, 1), (1, 37, 300), (5, 600, 45)]

# Epilogue kinds, as dense-layer tails: bias, activations, residual, scale, and several of them at once.
KINDS = {
    "bias": "a @ W + b",
    "relu": "relu(a @ W + b)",
    "gelu": "gelu(a @ W + b)",
    "gelu_tanh": 'gelu(a @ W + b, approximate="tanh")',
    "tanh": "tanh(a @ W)",
    "sigmoid": "sigmoid(a @ W + b)",
    "residual": "relu(a @ W + b + r)",
    "scale": "(a @ W) * 0.5 + 1.0",
}


def _source(expr: str, dtype: str, k: int, n: int) -> str:
    return (f"input a: {dtype}[N, {k}]\ninput r: {dtype}[N, {n}]\nparam W: {dtype}[{k}, {n}]\n"
            f"param b: {dtype}[{n}]\noutput y = {expr}\n")


def _operands(rows: int, k: int, n: int, np_dtype: type) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(rows * 1000 + k + n)
    return {"a": rng.standard_normal((rows, k)).astype(np_dtype) / np.sqrt(k),
            "r": rng.standard_normal((rows, n)).astype(np_dtype),
            "W": rng.standard_normal((k, n)).astype(np_dtype),
            "b": rng.standard_normal(n).astype(np_dtype)}


@contextmanager
def epilogue_form(form: str) -> Iterator[None]:
    _core.gemm_epilogue_force_form(form)
    try:
        yield
    finally:
        _core.gemm_epilogue_force_form("")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("form", ["tile", "block"])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("rows,k,n", SHAPES)
def test_tile_epilogue_matches_unfused(isa: str, form: str, dtype: str, kind: str, rows: int, k: int,
                                       n: int) -> None:
    np_dtype = np.float32 if dtype == "f32" else np.float64
    ops = _operands(rows, k, n, np_dtype)
    src = _source(KINDS[kind], dtype, k, n)
    used = {"a", "r"} if "r" in KINDS[kind] else {"a"}
    results = []
    with gemm_path(isa), epilogue_form(form):
        for fuse in (True, False):
            p = dlc.compile(source=src, dtype=dtype, fuse=fuse)
            p.set_params({"W": ops["W"], "b": ops["b"]})
            inputs = {name: ops[name] for name in used}
            results.append(p(**inputs)["y"])
            if fuse:
                np.testing.assert_array_equal(p(**inputs)["y"], results[0])  # same bits run to run
    tol = 2e-6 if dtype == "f32" else 1e-13
    np.testing.assert_allclose(results[0], results[1], rtol=tol, atol=tol)


def test_f64_gelu_epilogue_matches_numpy() -> None:
    """f64 keeps libm's erf in the tile loop: the fused result is the reference to rounding."""
    rows, k, n = 45, 70, 83
    ops = _operands(rows, k, n, np.float64)
    p = dlc.compile(source=_source(KINDS["gelu"], "f64", k, n), dtype="f64")
    p.set_params({"W": ops["W"], "b": ops["b"]})
    z = ops["a"] @ ops["W"] + ops["b"]
    ref = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    np.testing.assert_allclose(p(a=ops["a"])["y"], ref, rtol=1e-13, atol=1e-13)


TRAIN_MODEL = """input x: {dtype}[N, 40]
h = dense(x, 70) |> gelu
y = dense(h, 33)
output out = y
train {{
    loss = mean(y * y)
    optimizer = sgd(lr=0.1)
}}
"""


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("form", ["tile", "block", ""])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_training_epilogues_match_unfused(isa: str, form: str, dtype: str) -> None:
    """A training step's matmul groups: bias + gelu + gelu' with two stores (forward), gelu' of a saved value
    times the incoming gradient (backward), and the loss's square: gradients equal the unfused graph's."""
    np_dtype = np.float32 if dtype == "f32" else np.float64
    x = np.random.default_rng(5).standard_normal((37, 40)).astype(np_dtype)
    grads = []
    with gemm_path(isa), epilogue_form(form):
        for fuse in (True, False):
            p = dlc.compile(source=TRAIN_MODEL.format(dtype=dtype), dtype=dtype, fuse=fuse, seed=1)
            loss, g = p.loss_and_grads(x=x)
            grads.append((loss, g))
    (loss_f, g_f), (loss_u, g_u) = grads
    tol = 1e-5 if dtype == "f32" else 1e-12
    assert loss_f == pytest.approx(loss_u, rel=tol)
    for name in g_u:
        np.testing.assert_allclose(g_f[name], g_u[name], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("expr,shape_r", [("a @ W + r", "[B, M, 45]"), ("a @ W + r", "[B, 1, 45]"),
                                          ("relu(a @ V + r)", "[M, 45]")])
def test_batched_epilogue_operands(expr: str, shape_r: str) -> None:
    """Batched products: a residual per batch (rows one stride apart), one broadcast over M within each batch
    (not one stride: the general evaluator takes it) and a batched right operand."""
    src = (f"input a: f32[B, M, 30]\ninput r: f32{shape_r}\nparam W: f32[30, 45]\nparam V: f32[B, 30, 45]\n"
           f"output y = {expr}\n")
    rng = np.random.default_rng(0)
    dims = {"B": 3, "M": 19}
    shape = [dims.get(d, 0) or int(d) for d in shape_r.strip("[]").replace(" ", "").split(",")]
    a = rng.standard_normal((3, 19, 30)).astype(np.float32)
    r = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((30, 45)).astype(np.float32)
    v = rng.standard_normal((3, 30, 45)).astype(np.float32)
    out = []
    for fuse in (True, False):
        p = dlc.compile(source=src, fuse=fuse, dims=dims)
        p.set_params({"W": w, "V": v})
        out.append(p(a=a, r=r)["y"])
    np.testing.assert_allclose(out[0], out[1], rtol=2e-6, atol=2e-6)


def test_epilogue_form_hook() -> None:
    with pytest.raises(ValueError):
        _core.gemm_epilogue_force_form("fast")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_epilogue_form_follows_the_measured_rule(isa: str, dtype: str) -> None:
    """docs/optimizer.md, "Fusion never loses": the blocked loop runs an epilogue on its register tiles only when
    the product's K fits one K block (256); with several, on finished blocks of C, where the partial sums
    already are. Every form gives the unfused result (the tests above); this checks the choice is made."""
    np_dtype = np.float32 if dtype == "f32" else np.float64
    with gemm_path(isa):
        for k, want in ((200, "tile"), (256, "tile"), (257, "block"), (784, "block")):
            src = f"input x: {dtype}[N, {k}]\noutput y = dense(x, 96) |> relu\n"
            x = np.ones((40, k), np_dtype)
            dlc.compile(source=src, dims={"N": 40}, dtype=dtype)(x=x)
            assert _core.gemm_last_epilogue_form() == want, (k, want)
            dlc.compile(source=src, dims={"N": 40}, dtype=dtype, fuse=False)(x=x)
            assert _core.gemm_last_epilogue_form() == ""
