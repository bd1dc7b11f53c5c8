"""Our GEMM (`dlc._core.gemm_f32`, the kernel every matmul step runs) on each kernel path this CPU has
(avx512, avx2, scalar, forced with `gemm_force_isa`) against NumPy's BLAS: square fp32 problems n = 128 ...
2048 and the matmul shapes of the reference workloads, at 1 and 2 threads. The paths and NumPy are timed
in turn, round after round, so that load from other processes on a shared machine falls on all of them
alike; the table gives the median GFLOP/s over all timed calls (and, with --min, the best).

    python benchmarks/gemm_bench.py [--threads 1,2] [--paths avx512,avx2,scalar] [--repeat R] [--min]
                                    [--f64] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import dlc
from dlc import _core
from host import cpu_name, load_average

SIZES = (128, 256, 512, 1024, 2048)
# (label, M, N, K, trans_a, trans_b): the matmuls of the reference workloads (MLP layers at batch 64, their
# weight gradients, which read the activations transposed, and im2col convolutions).
WORKLOAD_SHAPES = (
    ("mlp fc1", 64, 512, 784, False, False),
    ("mlp fc2", 64, 256, 512, False, False),
    ("mlp dW1", 784, 512, 64, True, False),
    ("mlp dX", 64, 784, 512, False, True),
    ("ffn", 256, 1024, 256, False, False),
    ("ffn dW", 1024, 256, 256, True, False),
    ("conv 16x1024", 16, 1024, 144, False, False),
    ("conv 1024x16", 1024, 16, 144, False, False),
)
PATHS = ("avx512", "avx2", "scalar")
SETTLE_S = 0.15  # pause before each fn's calls in a round (see time_rounds)
BURST = 3  # timed calls per fn per round


def available_paths(wanted: tuple[str, ...]) -> list[str]:
    """The wanted paths this CPU runs (forcing one it lacks falls back to a lower one, which we skip)."""
    found = []
    try:
        for isa in wanted:
            _core.gemm_force_isa(isa)
            if _core.gemm_kernel_name() == isa:
                found.append(isa)
    finally:
        _core.gemm_force_isa("")
    return found


def time_rounds(fns: dict[str, Callable[[], Any]], repeat: int, budget_s: float) -> dict[str, list[float]]:
    """Seconds per call of each fn. Each round runs every fn in turn: a pause, an untimed call, then
    `BURST` timed calls. The pause matters with several threads: after a call, OpenBLAS's workers spin for
    tens of milliseconds (and OpenMP's for a shorter while), and on a 2-core machine that spinning would
    take a core from whichever library runs next. Stops after `repeat` rounds or once `budget_s` is
    spent (at least 3 rounds)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(repeat):
        for name, fn in fns.items():
            time.sleep(SETTLE_S)
            fn()  # warm-up: packing buffers, page faults, thread wake-up
            for _ in range(BURST):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    return times


def forced(isa: str, a: np.ndarray, b: np.ndarray, ta: bool, tb: bool) -> Callable[[], Any]:
    gemm = _core.gemm_f64 if a.dtype == np.float64 else _core.gemm_f32

    def call() -> Any:
        _core.gemm_force_isa(isa)
        try:
            return gemm(a, b, ta, tb)
        finally:
            _core.gemm_force_isa("")
    return call


def blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Limits NumPy's BLAS to `threads` where threadpoolctl is installed (else it keeps its own setting)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def numpy_product(a: np.ndarray, b: np.ndarray, ta: bool, tb: bool) -> Callable[[], Any]:
    op_a, op_b = (a.T if ta else a), (b.T if tb else b)
    return lambda: op_a @ op_b


def run(shapes: list[tuple[str, int, int, int, bool, bool]], paths: list[str], threads: int, repeat: int,
        dtype: type) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    dlc.set_num_threads(threads)
    rows = []
    with blas_threads(threads):
        for label, m, n, k, ta, tb in shapes:
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            fns = {isa: forced(isa, a, b, ta, tb) for isa in paths}
            fns["numpy"] = numpy_product(a, b, ta, tb)
            times = time_rounds(fns, repeat, budget_s=4.0)
            flop = 2.0 * m * n * k
            row: dict[str, Any] = {"shape": label, "M": m, "N": n, "K": k, "trans_a": ta, "trans_b": tb,
                                   "threads": threads}
            for name, ts in times.items():
                row[f"{name}_median_gflops"] = flop / statistics.median(ts) / 1e9
                row[f"{name}_best_gflops"] = flop / min(ts) / 1e9
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated kernel paths")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per shape (fewer once 4 s are spent)")
    parser.add_argument("--min", action="store_true", help="also print the best round's GFLOP/s")
    parser.add_argument("--f64", action="store_true", help="fp64 instead of fp32")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    paths = available_paths(tuple(args.paths.split(",")))
    dtype = np.float64 if args.f64 else np.float32
    shapes = [(f"{n}^3", n, n, n, False, False) for n in SIZES] + list(WORKLOAD_SHAPES)
    before = dlc.get_num_threads()
    all_rows = []
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            rows = run(shapes, paths, threads, args.repeat, dtype)
            all_rows += rows
            cols = paths + ["numpy"]
            print(f"\n{np.dtype(dtype).name}, {threads} thread(s) (dlc and NumPy's BLAS); GFLOP/s, median of rounds"
                  + (" / best round" if args.min else "") + f"; {paths[0]}/numpy = ratio of medians")
            width = 15 if args.min else 9
            print(f"{'shape':>13} {'M':>5} {'N':>5} {'K':>5} {'tA':>2} {'tB':>2} "
                  + " ".join(f"{c:>{width}}" for c in cols) + f" {paths[0] + '/numpy':>13}")
            for r in rows:
                cells = []
                for c in cols:
                    med = r[f"{c}_median_gflops"]
                    cells.append(f"{med:>7.1f}/{r[f'{c}_best_gflops']:<7.1f}" if args.min else f"{med:>{width}.1f}")
                ratio = r[f"{paths[0]}_median_gflops"] / r["numpy_median_gflops"]
                print(f"{r['shape']:>13} {r['M']:>5} {r['N']:>5} {r['K']:>5} {'T' if r['trans_a'] else '-':>2} "
                      f"{'T' if r['trans_b'] else '-':>2} " + " ".join(cells) + f" {ratio:>13.2f}")
    finally:
        dlc.set_num_threads(before)
    if args.json:
        with open(args.json, "w") as f:
            # The host is named with the figures: GFLOP/s from different CPUs are not comparable.
            json.dump({"cpu": cpu_name(), "load": load_average(), "rows": all_rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
