"""Threads on a shared machine: the default thread count follows the affinity mask, the pool's dynamically
scheduled kernels stay bit-identical run to run, and a plan run from several Python threads at once (the
pool is busy with one of them, the others run their loops inline in the same chunks) gives the same bits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dlc


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs affinity masks")
def test_default_threads_follow_the_affinity_mask() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}}); import dlc; print(dlc.get_num_threads())"
    assert _run(code).stdout.strip() == "1"
    assert _run("import dlc; print(dlc.get_num_threads())").stdout.strip() == str(len(os.sched_getaffinity(0)))
    assert _run("import dlc; print(dlc.get_num_threads())", OMP_NUM_THREADS="3").stdout.strip() == "3"


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
    # The guard's cost: train_step against the same step plan without the guard, timed in turns of their own.
    assert result["one_plan_ms"] > 0 and result["guarded_ms"] > 0
    assert result["guard_cost"] == pytest.approx(result["guarded_ms"] / result["one_plan_ms"] - 1)
    assert "without the non-finite guard, in turns with train_step" in format_bench(result)


def test_the_one_plan_step_bench_times_updates_like_train_step() -> None:
    # What `dlc bench --train` compares the guarded step with must be the same step: same parameters after.
    from dlc.bench import _one_plan_step, _prepare
    guarded, one_plan = (_prepare("models/mlp.dlm", {"N": 8}, True, True, 0) for _ in range(2))
    guarded.call()
    _one_plan_step(one_plan)()
    for name, value in guarded.program.params.items():
        np.testing.assert_array_equal(one_plan.program.params[name], value)


def test_concurrent_callers_get_the_same_bits() -> None:
    """Several Python threads share one pool: whichever holds it runs in parallel, the others inline, over the
    same chunks, so every caller gets the result of the single-caller run."""
    import threading
    p = dlc.compile(source="input x: f32[N, 512]\noutput y = mean(gelu(x) * x, axis=0)\n")
    x = np.random.default_rng(5).standard_normal((512, 512)).astype(np.float32)
    expected = p(x=x)["y"]
    results: list[np.ndarray] = []

    def worker() -> None:
        for _ in range(5):
            results.append(p(x=x)["y"])
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)
