"""Measures the thread cost model's constants on this machine (runtime/thread_pool.h threads_for, plan.h):

1. GEMM: for products from 16K to 4M multiply-adds (batch-1 matrix-vector shapes and small blocked ones), the
   time on two threads (every loop forced onto the whole pool with set_work_per_thread_scale(0)) over the time
   on one. Where it drops below 1 a second thread pays: kGemmMacsPerThread (gemm.h) sits at that crossover.
2. Single-thread cost per unit: nanoseconds per multiply-add of a GEMM and per element of an elementwise
   kernel (relu), for plan.h's kNsPerMac and kNsPerElement.
3. Plans: the reference workloads' inference at small batches, with the plan's estimated cost, timed on one
   thread and on two with the plan-level rule off (set_inline_plan_ns(0)): below which cost two threads do
   not pay (kInlinePlanNs).

One and two threads alternate in blocks with 0.2 s pauses (peers.alternating_ms), so load from other
processes falls on both alike; on a busy machine read the ratios, not the times.

    python benchmarks/threads_bench.py [--part gemm,unit,plan] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import dlc
from dlc import _core

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import alternating_ms  # noqa: E402

# (M, N, K): matrix-vector products and few-row GEMMs from 16K to 4M multiply-adds.
GEMMS = ((1, 128, 128), (1, 256, 256), (1, 512, 256), (1, 512, 512), (1, 512, 784), (1, 1024, 1024),
         (1, 2048, 1024), (8, 128, 128), (8, 256, 256), (16, 256, 256), (16, 512, 256), (32, 512, 256),
         (64, 256, 256), (64, 512, 784))


def on_threads(threads: int, fn):
    def call():
        dlc.set_num_threads(threads)
        return fn()
    return call


def gemm_part(rounds: int) -> None:
    print("GEMM: time on 2 threads / on 1 (every loop forced onto both threads)")
    print(f"{'M':>4} {'N':>5} {'K':>5} {'MACs':>9} {'1 thr us':>9} {'2/1':>6}")
    rng = np.random.default_rng(0)
    _core.set_work_per_thread_scale(0.0)
    try:
        for m, n, k in GEMMS:
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            call = lambda: _core.gemm_f32(a, b, False, False)  # noqa: E731
            ms = alternating_ms({"1": on_threads(1, call), "2": on_threads(2, call)}, block=50, rounds=rounds)
            print(f"{m:>4} {n:>5} {k:>5} {m * n * k:>9} {1e3 * ms['1']:>9.1f} {ms['2'] / ms['1']:>6.2f}", flush=True)
    finally:
        _core.set_work_per_thread_scale(1.0)


def unit_part(rounds: int) -> None:
    dlc.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 1 << 20
    relu = dlc.compile(source="input x: f32[N]\noutput y = relu(x)\n", dims={"N": n})
    x = rng.standard_normal(n).astype(np.float32)
    m, k, c = 64, 784, 512
    mm = dlc.compile(source=f"input a: f32[N, {k}]\nparam W: f32[{k}, {c}]\noutput y = a @ W\n", dims={"N": m})
    mm.set_params({"W": rng.standard_normal((k, c)).astype(np.float32)})
    a = rng.standard_normal((m, k)).astype(np.float32)
    ms = alternating_ms({"relu": lambda: relu(x=x), "matmul": lambda: mm(a=a)}, block=20, rounds=rounds)
    print(f"1 thread: {1e6 * ms['relu'] / (2 * n):.3f} ns per element (relu of 2^20, read + write), "
          f"{1e6 * ms['matmul'] / (m * k * c):.4f} ns per multiply-add ({m}x{c}x{k} matmul)")


def plan_part(rounds: int, batches: list[int]) -> None:
    from dlc.bench import label_graph, random_batch
    print("plans: time on 2 threads (plan-level rule off) / on 1")
    print(f"{'workload':>12} {'N':>3} {'cost us':>8} {'1 thr us':>9} {'2/1':>6}")
    for name in ("mlp", "lenet", "gelu_mlp", "transformer", "lstm", "resnet8"):
        for batch in batches:
            program = dlc.compile(str(HERE.parent / "models" / f"{name}.dlm"), dims={"N": batch})
            data = random_batch(program, label_graph(program, {"N": batch}), np.random.default_rng(0), {"N": batch})
            inputs = {k: v for k, v in data.items() if k in program.inputs}
            program(**inputs)
            cost = program.compile_plan().plan.cost_ns
            call = lambda p=program, i=inputs: p(**i)  # noqa: E731
            _core.set_inline_plan_ns(0.0)  # the plan-level rule off; each kernel keeps its own model
            try:
                ms = alternating_ms({"1": on_threads(1, call), "2": on_threads(2, call)}, block=30, rounds=rounds)
            finally:
                _core.set_inline_plan_ns(-1.0)
            print(f"{name:>12} {batch:>3} {cost / 1e3:>8.1f} {1e3 * ms['1']:>9.1f} {ms['2'] / ms['1']:>6.2f}",
                  flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="gemm,unit,plan")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,4")
    args = parser.parse_args()
    before = dlc.get_num_threads()
    try:
        parts = args.part.split(",")
        if "gemm" in parts:
            gemm_part(args.rounds)
        if "unit" in parts:
            unit_part(args.rounds)
        if "plan" in parts:
            plan_part(args.rounds, [int(b) for b in args.batches.split(",")])
    finally:
        dlc.set_num_threads(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
