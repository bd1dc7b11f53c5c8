"""The bf16 GEMM (csrc/kernels/gemm/gemm_bf16.h) against a NumPy reference of the same arithmetic: both operands
rounded to bfloat16 (to nearest, ties to even), the exact products summed in f32. Any order of the f32 additions
stays within K * 2^-24 * sum |a~| |b~| of the exact sum of the rounded products (docs/precision.md), which is the
bound checked here, on every path (the AVX512_BF16 one where the CPU has it, the portable one always), with B
packed per call and packed ahead as a plan's weight cache does."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest

from dlc import _core
from dlc.precision import bf16_bits, bf16_values, round_bf16
from test_packed_weights import _matmul_plan

PATHS = ["avx512_bf16", "scalar"]


@contextmanager
def forced_bf16_path(path: str) -> Iterator[None]:
    _core.gemm_bf16_force_isa(path)
    try:
        yield
    finally:
        _core.gemm_bf16_force_isa("")


def reference(a: np.ndarray, b: np.ndarray, trans_b: bool) -> tuple[np.ndarray, np.ndarray]:
    """The exact sum of the rounded products (f64 holds each exactly, and their sum closely) and the bound."""
    ar, br = round_bf16(a).astype(np.float64), round_bf16(b).astype(np.float64)
    br = br.T if trans_b else br
    return ar @ br, a.shape[1] * 2.0 ** -24 * (np.abs(ar) @ np.abs(br))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 784, 512), (3, 7, 5), (8, 2, 32), (9, 33, 31), (17, 64, 33),
                                   (65, 129, 70), (130, 300, 96)])
def test_matches_the_bf16_reference(path: str, packed: bool, trans_b: bool, m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    ref, bound = reference(a, b, trans_b)
    with forced_bf16_path(path):
        c = _core.gemm_bf16(a, b, trans_b=trans_b, packed=packed)
    assert c.dtype == np.float32 and c.shape == (m, n)
    assert np.all(np.abs(c - ref) <= bound), float(np.max(np.abs(c - ref) - bound))


def test_paths_agree_and_the_fast_one_runs_where_the_cpu_has_it() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 250)).astype(np.float32), rng.standard_normal((250, 48)).astype(np.float32)
    out = {}
    for path in PATHS:
        with forced_bf16_path(path):
            out[path] = _core.gemm_bf16(a, b)
            name = _core.gemm_bf16_kernel_name()
        assert name == (path if path == "scalar" or _core.cpu_has_avx512_bf16() else "scalar")
    _, bound = reference(a, b, False)
    assert np.all(np.abs(out["avx512_bf16"] - out["scalar"]) <= 2 * bound)
    with pytest.raises(ValueError, match="unknown bf16 GEMM path"):
        _core.gemm_bf16_force_isa("amx")


@pytest.mark.parametrize("path", PATHS)
def test_operands_round_to_nearest_even(path: str) -> None:
    """With A = [1] each output is one B element rounded: ties go to the even bf16, NaN and infinities stay."""
    b = np.array([[1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -(1 + 2 ** -8) + 2 ** -20, 3.0e38, np.inf, -np.inf,
                   np.nan, 0.0, -0.0]], np.float32)
    with forced_bf16_path(path):
        c = _core.gemm_bf16(np.ones((1, 1), np.float32), b)[0]
    expected = round_bf16(b[0])
    np.testing.assert_array_equal(c[:7], expected[:7])
    assert list(expected[:3]) == [1.0, 1 + 2 ** -6, 1.0] and np.isnan(c[7]) and c[8] == 0
    assert list(bf16_bits(b[0, :3])) == [0x3F80, 0x3F82, 0x3F80]
    assert np.isnan(bf16_values(bf16_bits(b[0, 7:8]))[0])


@pytest.mark.parametrize("path", PATHS)
def test_a_plan_packs_the_weight_once_in_bf16(path: str) -> None:
    """A matmul_bf16 step with packing on converts its weight once (half the bytes of f32) and repacks only
    after the version moves; the packed copy changes no bit."""
    m, k, n = 6, 100, 40
    rng = np.random.default_rng(3)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    versions = _core.ParamVersions(1)

    def plan(packing: bool) -> _core.Plan:
        p = _matmul_plan(m, k, n, w, versions, key="matmul_bf16")
        p.set_weight_packing(packing)
        return p

    def run(p: _core.Plan) -> np.ndarray:
        out = np.empty((m, n), np.float32)
        p.run([x], [out])
        return out

    with forced_bf16_path(path):
        packed, unpacked = plan(True), plan(False)
        first = run(packed)
        np.testing.assert_array_equal(first, run(unpacked))
        assert packed.pack_count == 1 and packed.packed_bytes == k * 64 * 2  # 50 pairs x 64 columns x 4 bytes
        run(packed)
        assert packed.pack_count == 1
        w *= 2
        versions.advance(0)
        np.testing.assert_array_equal(run(packed), 2 * first)
        assert packed.pack_count == 2
