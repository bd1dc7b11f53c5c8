"""Threads sized to the work (runtime/thread_pool.h threads_for, plan.h's cost model): small kernels run inline on
the caller, large ones get the pool, a plan whose whole run is cheap never leaves the caller, `dlc bench` shows
each kernel's thread count, and none of these choices changes a single bit of any result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dlc
from dlc import _core
from dlc.bench import label_graph, random_batch


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = dlc.get_num_threads()
    dlc.set_num_threads(n)
    try:
        yield
    finally:
        dlc.set_num_threads(before)


@contextmanager
def cost_model(scale: float, inline_plan_ns: float) -> Iterator[None]:
    """scale 0: every loop asks for the whole pool; huge: every kernel inline. inline_plan_ns 0: plans never
    run inline as a whole."""
    _core.set_work_per_thread_scale(scale)
    _core.set_inline_plan_ns(inline_plan_ns)
    try:
        yield
    finally:
        _core.set_work_per_thread_scale(1.0)
        _core.set_inline_plan_ns(-1.0)


def _profiled_threads(program: dlc.Program, **inputs: np.ndarray) -> list[int]:
    lowered = program.compile_plan()
    ins = [np.ascontiguousarray(inputs[n]) for n in lowered.input_names]
    outs = [np.empty(tuple(int(d) for d in t.shape), np.float32) for t in lowered.output_types]
    lowered.plan.run(ins, outs, profile=True)
    return list(lowered.plan.step_threads)


def test_kernel_threads_follow_the_work() -> None:
    """A 512^3 product (134M multiply-adds) takes both threads; a 16 x 16 x 16 one runs on the caller."""
    src = "input a: f32[N, {k}]\nparam W: f32[{k}, {k}]\noutput y = a @ W\n"
    with threads(2):
        big = dlc.compile(source=src.format(k=512), dims={"N": 512})
        assert not big.compile_plan().plan.runs_inline
        assert _profiled_threads(big, a=np.ones((512, 512), np.float32)) == [2]
        small = dlc.compile(source=src.format(k=16), dims={"N": 16})
        assert _profiled_threads(small, a=np.ones((16, 16), np.float32)) == [1]
        with cost_model(0.0, 0.0):  # the hook: everything asks for the pool
            assert _profiled_threads(small, a=np.ones((16, 16), np.float32)) == [2]


def test_small_plans_run_inline() -> None:
    """The estimated cost of a plan grows with its work; below the limit every step stays on the caller even
    where a kernel alone would take the pool."""
    src = "input x: f32[N, 64]\nparam W: f32[64, 64]\noutput y = relu(x @ W)\n"
    with threads(2):
        tiny = dlc.compile(source=src, dims={"N": 1}).compile_plan().plan
        large = dlc.compile(source=src, dims={"N": 4096}).compile_plan().plan
        assert tiny.runs_inline and not large.runs_inline
        assert 0 < tiny.cost_ns < large.cost_ns
        p = dlc.compile(source=src, dims={"N": 1})
        with cost_model(0.0, -1.0):  # kernels would take the pool, the plan rule keeps them inline
            assert _profiled_threads(p, x=np.ones((1, 64), np.float32)) == [1]


def test_bench_shows_each_kernels_threads() -> None:
    from dlc.bench import format_bench, run_bench
    with threads(2):
        result = run_bench("models/mlp.dlm", {"N": 64}, repeat=2, warmup=1)
    rows = result["fused"]["kernels"]
    assert all(r["threads"] in (1, 2) for r in rows)
    assert max(r["threads"] for r in rows) == 2  # the 64 x 784 x 512 layer
    assert " thr " in format_bench(result)


@pytest.mark.parametrize("name,batch", [("mlp", 3), ("lenet", 2), ("transformer", 2), ("lstm", 3),
                                        ("gelu_mlp", 5)])
def test_thread_counts_never_change_results(name: str, batch: int) -> None:
    """At a given set_num_threads, the same bits with the measured model, with every loop on the whole pool and
    with every kernel inline: chunk boundaries depend on the loop's size only, and each GEMM output is summed
    in one order whatever the team. Inference and a training step."""
    results = []
    with threads(2):
        for scale, inline_ns in ((1.0, -1.0), (0.0, 0.0), (1e12, -1.0), (1.0, -1.0)):
            with cost_model(scale, inline_ns):
                p = dlc.compile(f"models/{name}.dlm", dims={"N": batch})
                data = random_batch(p, label_graph(p, {"N": batch}), np.random.default_rng(0), {"N": batch})
                inputs = {k: v for k, v in data.items() if k in p.inputs}
                y = p(**inputs)
                p.train_step(**data)
                results.append([*y.values(), *(v.copy() for v in p.params.values())])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
