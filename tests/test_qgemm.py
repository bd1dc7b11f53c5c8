"""The int8 GEMM kernels (csrc/kernels/qgemm) against NumPy integer references: exact on every kernel path."""

from __future__ import annotations

import numpy as np
import pytest

from dlc import _core

PATHS = ["avx512vnni", "avx2", "scalar"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest):
    _core.qgemm_force_isa(request.param)
    yield request.param
    _core.qgemm_force_isa("")


def ref_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 of w [K, N]: (q [N, K], scale [N])."""
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8).T
    return np.ascontiguousarray(q), scale


def ref_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    r = np.round(x / np.float32(scale)) + np.float32(zp)
    r = np.where(np.isnan(r), 0, r)
    return np.clip(r, 0, 255).astype(np.uint8)


def ref_qgemm(a: np.ndarray, sa: float, za: int, q: np.ndarray, ws: np.ndarray) -> np.ndarray:
    acc = (a.astype(np.int64) - za) @ q.T.astype(np.int64)
    return acc.astype(np.float32) * (np.float32(sa) * ws)


SHAPES = [(1, 1, 1), (1, 784, 512), (1, 5, 33), (2, 3, 4), (7, 33, 70), (9, 64, 32), (17, 4, 31), (65, 129, 97),
          (130, 1, 3), (64, 256, 64)]


@pytest.mark.parametrize("M,K,N", SHAPES)
def test_qgemm_exact(path: str, M: int, K: int, N: int) -> None:
    assert _core.qgemm_kernel_name() == path or path != "scalar"  # a path the CPU lacks falls back
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    w = rng.standard_normal((K, N)).astype(np.float32)
    q, ws = _core.quantize_weights_s8(w)
    a = rng.integers(0, 256, (M, K)).astype(np.uint8)
    za = int(rng.integers(0, 256))
    out = _core.qgemm_pack(q, ws)(a, 0.0173, za)
    np.testing.assert_array_equal(out, ref_qgemm(a, 0.0173, za, q, ws))


def test_qgemm_extremes_do_not_saturate(path: str) -> None:
    """255 x -128 everywhere (where AVX2's vpmaddubsw would saturate) at the largest K the kernel accepts."""
    K = 65536
    q = np.full((3, K), -128, np.int8)
    q[1] = 127
    a = np.full((2, K), 255, np.uint8)
    out = _core.qgemm_pack(q, np.ones(3, np.float32))(a, 1.0, 0)
    np.testing.assert_array_equal(out, ref_qgemm(a, 1.0, 0, q, np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="K = 65537"):
        _core.qgemm_pack(np.zeros((1, K + 1), np.int8), np.ones(1, np.float32))


def test_weights_quantized_per_channel() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((37, 11)).astype(np.float32) * np.linspace(0.01, 10, 11, dtype=np.float32)
    w[:, 3] = 0
    w[5, 4] = 0.5  # a tie: rounds to even
    q, s = _core.quantize_weights_s8(w)
    rq, rs = ref_weights(w)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_array_equal(q, rq)
    assert s[3] == 1 and not q[3].any()
    qt, st = _core.quantize_weights_s8(np.ascontiguousarray(w.T), trans=True)
    np.testing.assert_array_equal(qt, q)
    np.testing.assert_array_equal(st, s)
    w[2, 2] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        _core.quantize_weights_s8(w)


def test_quantize_u8_matches_quantize_linear(path: str) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((5, 37)) * 4).astype(np.float32)
    x[0, :6] = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0]
    x[1, :4] = [0.05, 0.15, -0.05, 0.25]  # halves of the 0.1 step: ties round to even
    q = _core.quantize_u8(x, 0.1, 100)
    np.testing.assert_array_equal(q, ref_quantize(x, 0.1, 100))
    assert list(q[0, :6]) == [0, 255, 0, 255, 0, 100]
    with pytest.raises(ValueError, match="scale"):
        _core.quantize_u8(x, 0.0, 0)


def test_dynamic_params_as_dynamic_quantize_linear() -> None:
    x = np.array([[-1.5, 0.25, 3.0, 2.0]], np.float32)
    s, z = _core.dynamic_u8_params(x)
    assert s == np.float32(4.5) / np.float32(255)
    assert z == int(np.round(np.float32(1.5) / np.float32(s)))
    assert _core.dynamic_u8_params(np.array([2.0, 5.0], np.float32)) == (np.float32(5 / 255), 0)
    assert _core.dynamic_u8_params(np.zeros(4, np.float32)) == (1.0, 0)
    s, z = _core.dynamic_u8_params(np.array([-2.0, np.nan, np.inf], np.float32))
    assert (s, z) == (np.float32(2 / 255), 255)


def test_force_isa_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown path"):
        _core.qgemm_force_isa("neon")
