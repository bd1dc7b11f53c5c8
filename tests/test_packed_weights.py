"""Weights packed once (csrc/runtime/packed_weights.h), at the plan level: a matmul step whose right operand is a
parameter keeps it packed with the version it was packed at, repacks only when that version moves, never
computes from a stale copy once the writer has advanced the version, and advances the version itself for the
buffers its own steps write. Plans are built directly on _core.Plan, as the lowering does."""

from __future__ import annotations

import numpy as np
import pytest

from dlc import _core
from test_runtime import GEMM_ISAS, forced_gemm_isa

ARENA, PERSISTENT, INPUT = 0, 1, 2
F32, F64 = 0, 1


def _matmul_plan(m: int, k: int, n: int, w: np.ndarray, versions: _core.ParamVersions, trans_b: bool = False,
                 dtype: int = F32, key: str = "matmul") -> _core.Plan:
    """y = x @ W (x an input, W persistent buffer 0), the product written straight to the output; `key` the
    matmul kernel ("matmul_bf16": test_gemm_bf16.py)."""
    item = 4 if dtype == F32 else 8
    plan = _core.Plan(m * n * item)
    x = plan.add_slot(INPUT, 0, dtype, [m, k])
    wslot = plan.add_slot(PERSISTENT, 0, dtype, list(w.shape))
    y = plan.add_slot(ARENA, 0, dtype, [m, n])
    plan.add_step(key, "matmul", [x, wslot], [y], [0, int(trans_b), 0], [], -1)
    plan.set_num_inputs(1)
    plan.set_outputs([y])
    plan.set_persistent([w])
    plan.set_param_versions(versions)
    plan.set_weight_packing(True)
    return plan


def _run(plan: _core.Plan, x: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((x.shape[0], n), x.dtype)
    plan.run([x], [out])
    return out


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("np_dtype,code", [(np.float32, F32), (np.float64, F64)])
def test_packed_once_and_repacked_only_when_the_version_moves(isa: str, trans_b: bool, np_dtype: type,
                                                               code: int) -> None:
    m, k, n = 150, 300, 70  # enough rows for the blocked loop, which packs B; two K blocks
    rng = np.random.default_rng(1)
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np_dtype)
    x = rng.standard_normal((m, k)).astype(np_dtype)
    versions = _core.ParamVersions(1)
    with forced_gemm_isa(isa):
        plan = _matmul_plan(m, k, n, w, versions, trans_b, code)
        ref = x @ (w.T if trans_b else w)
        first = _run(plan, x, n)
        tol = 1e-4 if np_dtype == np.float32 else 1e-12
        np.testing.assert_allclose(first, ref, rtol=tol, atol=tol * np.sqrt(k))
        assert plan.pack_count == 1 and plan.packed_bytes >= w.nbytes
        np.testing.assert_array_equal(_run(plan, x, n), first)  # the packed copy serves again
        assert plan.pack_count == 1
        # Unpacked (the same arithmetic): the packed copy changes no bit.
        plan.set_weight_packing(False)
        np.testing.assert_array_equal(_run(plan, x, n), first)
        plan.set_weight_packing(True)

        # A write the plan is told about: the next run repacks and uses the new values.
        w *= 2
        versions.advance(0)
        np.testing.assert_allclose(_run(plan, x, n), 2 * ref, rtol=tol, atol=2 * tol * np.sqrt(k))
        assert plan.pack_count == 2
        # The stale-pack hazard itself: a write nobody reports is not seen (why packing is opt-in until every
        # writer advances versions), and advancing the version makes the plan see it.
        w /= 2
        stale = _run(plan, x, n)
        np.testing.assert_allclose(stale, 2 * ref, rtol=tol, atol=2 * tol * np.sqrt(k))
        versions.advance_all()
        np.testing.assert_array_equal(_run(plan, x, n), first)
        assert plan.pack_count == 3


def test_a_plans_own_writes_advance_the_version() -> None:
    """A training plan writes W (here a copy step into it); an inference plan sharing the version table repacks."""
    m, k, n = 150, 64, 40
    rng = np.random.default_rng(2)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    versions = _core.ParamVersions(1)
    infer = _matmul_plan(m, k, n, w, versions)
    before = _run(infer, x, n)

    writer = _core.Plan(0)
    src = writer.add_slot(INPUT, 0, F32, [k, n])
    dst = writer.add_slot(PERSISTENT, 0, F32, [k, n])
    writer.add_step("copy", "copy", [src], [dst], [], [], -1)
    writer.set_num_inputs(1)
    writer.set_outputs([])
    writer.set_persistent([w])
    writer.set_param_versions(versions)
    new_w = rng.standard_normal((k, n)).astype(np.float32)
    writer.run([new_w], [])
    assert versions.version(0) == 1

    after = _run(infer, x, n)
    np.testing.assert_allclose(after, x @ new_w, rtol=1e-4, atol=1e-3)
    assert not np.array_equal(after, before) and infer.pack_count == 2


# Rows up to which a path streams B even when it is packed ahead (Path::packed_*_rows in gemm_cpu.cpp).
STREAMED_ROWS = {"avx512": 1, "avx2": 32, "scalar": 64}


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("trans_b", [False, True])
def test_few_rows_read_a_packed_copy_where_it_is_faster(isa: str, trans_b: bool) -> None:
    """One row: every path streams B through its matrix-vector kernel and keeps no copy. Few rows: the AVX-512
    path reads a copy packed ahead (its packed micro-kernel beat streaming from 2 rows once packing is free),
    the others stream B as they would unpacked. Either way the values are right, and with B as stored the
    packed copy changes no bit (the direct-B and packed micro-kernels do the same arithmetic)."""
    k, n = 200, 72
    rng = np.random.default_rng(4)
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    with forced_gemm_isa(isa):
        for m in (1, 2, 5, 16, 33):
            x = rng.standard_normal((m, k)).astype(np.float32)
            plan = _matmul_plan(m, k, n, w, _core.ParamVersions(1), trans_b)
            got = _run(plan, x, n)
            np.testing.assert_allclose(got, x @ (w.T if trans_b else w), rtol=1e-4, atol=1e-4 * np.sqrt(k))
            reads_copy = m > STREAMED_ROWS[isa]
            assert (plan.pack_count == 1) == reads_copy and (plan.packed_bytes > 0) == reads_copy
            if not trans_b:
                plan.set_weight_packing(False)
                np.testing.assert_array_equal(_run(plan, x, n), got)


def test_versions_reject_unknown_buffers() -> None:
    with pytest.raises(IndexError):
        _core.ParamVersions(2).advance(2)
