"""Products with few rows of C (batch 1 and tiny batches), where the GEMM reads B in place instead of packing it:
the direct-B kernels when B is used as stored, the small-M dot kernels when it is used transposed. Every shape
class (M from 2 past the streaming row limits, K and N at 1, primes, non-multiples of every register tile),
every operand layout, f32 and f64, on each kernel path, with the streaming forms forced on, forced off and
chosen automatically: all must agree with NumPy and still run a fused epilogue (test_runtime's
test_gemm_paths_are_deterministic checks the same bits for any thread count at few rows too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dlc
from dlc import _core
from test_runtime import GEMM_ISAS, forced_gemm_isa
from test_runtime import _gemm_operands as _operands

MODES = ("stream", "packed", "")  # "": the automatic choice by the measured row limits
ROWS = (2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 65)
# (K, N): single elements, primes, a tail of k shorter than any vector, N past several column chunks.
KN = ((1, 2), (3, 5), (17, 31), (37, 53), (100, 257), (300, 70))


@contextmanager
def small_m(mode: str) -> Iterator[None]:
    _core.gemm_force_small_m(mode)
    try:
        yield
    finally:
        _core.gemm_force_small_m("")


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("mode", MODES)
def test_small_m_agrees_with_numpy(isa: str, mode: str) -> None:
    with forced_gemm_isa(isa), small_m(mode):
        for m in ROWS:
            for k, n in KN:
                for ta in (False, True):
                    for tb in (False, True):
                        a, b = _operands(m, k, n, ta, tb, np.float64)
                        ref = (a.T if ta else a) @ (b.T if tb else b)
                        got = _core.gemm_f64(a, b, ta, tb)
                        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.sqrt(k),
                                                   err_msg=f"f64 m={m} k={k} n={n} ta={ta} tb={tb}")
                        a32, b32 = a.astype(np.float32), b.astype(np.float32)
                        ref32 = (a32.T if ta else a32).astype(np.float64) @ (b32.T if tb else b32).astype(np.float64)
                        got32 = _core.gemm_f32(a32, b32, ta, tb)
                        assert got32.dtype == np.float32
                        np.testing.assert_allclose(got32, ref32, rtol=1e-4, atol=1e-4 * np.sqrt(k),
                                                   err_msg=f"f32 m={m} k={k} n={n} ta={ta} tb={tb}")


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("rows", [2, 7, 16])
def test_small_m_runs_the_fused_epilogue(isa: str, dtype: str, trans_b: bool, rows: int) -> None:
    """gelu(a @ W + b + r) through a plan, fused (the epilogue runs on the blocks the streaming kernels finish)
    against unfused."""
    k, n = 37, 75
    w_shape = f"[{n}, {k}]" if trans_b else f"[{k}, {n}]"
    product = f"matmul(a, W, trans_b={'true' if trans_b else 'false'})"
    src = (f"input a: {dtype}[N, {k}]\ninput r: {dtype}[N, {n}]\nparam W: {dtype}{w_shape}\n"
           f"param b: {dtype}[{n}]\noutput y = gelu({product} + b + r)\n")
    np_dtype = np.float32 if dtype == "f32" else np.float64
    rng = np.random.default_rng(rows + k + n)
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np_dtype)
    bias = rng.standard_normal(n).astype(np_dtype)
    a = (rng.standard_normal((rows, k)) / np.sqrt(k)).astype(np_dtype)
    r = rng.standard_normal((rows, n)).astype(np_dtype)
    results = []
    with forced_gemm_isa(isa), small_m("stream"):
        for fuse in (True, False):
            p = dlc.compile(source=src, dtype=dtype, fuse=fuse)
            p.set_params({"W": w, "b": bias})
            results.append(p(a=a, r=r)["y"])
            np.testing.assert_array_equal(p(a=a, r=r)["y"], results[-1])
    tol = 2e-6 if dtype == "f32" else 1e-13
    np.testing.assert_allclose(results[0], results[1], rtol=tol, atol=tol)


def test_small_m_hook_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError):
        _core.gemm_force_small_m("sometimes")
