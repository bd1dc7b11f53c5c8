"""Threads on a shared machine: the default thread count follows the affinity mask, libgomp's spin-wait is
bounded unless the user chose a policy, and the dynamically scheduled kernels stay bit-identical run to run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dlc


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs affinity masks")
def test_default_threads_follow_the_affinity_mask() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}}); import dlc; print(dlc.get_num_threads())"
    assert _run(code).stdout.strip() == "1"
    assert _run("import dlc; print(dlc.get_num_threads())").stdout.strip() == str(len(os.sched_getaffinity(0)))
    assert _run("import dlc; print(dlc.get_num_threads())", OMP_NUM_THREADS="3").stdout.strip() == "3"


def test_spin_wait_is_bounded_unless_the_user_chose() -> None:
    """libgomp prints its settings at start-up with OMP_DISPLAY_ENV; the spin count is the one dlc set."""
    shown = _run("import dlc", OMP_DISPLAY_ENV="VERBOSE").stderr
    assert f"GOMP_SPINCOUNT = '{dlc.threads.DEFAULT_SPINCOUNT}'" in shown
    shown = _run("import dlc", OMP_DISPLAY_ENV="VERBOSE", OMP_WAIT_POLICY="active").stderr
    assert f"GOMP_SPINCOUNT = '{dlc.threads.DEFAULT_SPINCOUNT}'" not in shown


def test_set_num_threads_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        dlc.set_num_threads(0)


@pytest.mark.parametrize("threads", [1, 2])
def test_dynamic_chunks_are_bit_identical_run_to_run(threads: int) -> None:
    """Which thread takes which chunk varies from run to run; the results must not (a matmul with a fused
    epilogue, an elementwise chain and a fused reduction, forward and training step)."""
    source = ("input x: f32[N, 300]\nh = dense(x, 257) |> gelu\noutput y = tanh(h) * 0.5 + 0.5\n"
              "train {\n    loss = mean(y * y)\n    optimizer = adam(lr=1e-3)\n}\n")
    x = np.random.default_rng(0).standard_normal((193, 300)).astype(np.float32)
    before = dlc.get_num_threads()
    try:
        dlc.set_num_threads(threads)
        runs = []
        for _ in range(3):
            p = dlc.compile(source=source)
            y = p(x=x)["y"]
            p.train_step(x=x)
            p.train_step(x=x)
            runs.append((y, np.concatenate([v.ravel() for v in p.params.values()]), p(x=x)["y"]))
    finally:
        dlc.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_bench_kernel_table_comes_from_the_timed_loop(tmp_path) -> None:
    """The per-kernel medians are taken over the same repeated runs as the totals they are shown beside."""
    from dlc.bench import format_bench, run_bench
    result = run_bench("models/mlp.dlm", {"N": 8}, train=True, repeat=3, warmup=1)
    for name in ("fused", "unfused"):
        v = result[name]
        assert len(v["kernels"]) == v["steps"]
        assert v["kernel_sum_ms"] == pytest.approx(sum(r["ms"] for r in v["kernels"]))
        assert v["profiled_ms"] > 0
    assert "medians of the 3 profiled runs" in format_bench(result)
