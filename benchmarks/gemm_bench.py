"""Our GEMM (`dlc._core.gemm_f32`, the kernel every matmul step runs) against NumPy's BLAS on square fp32
problems, n = 128 ... 2048: median seconds, GFLOP/s and the ratio ours / NumPy's (target: >= 0.9 at n >= 512).

    python benchmarks/gemm_bench.py [--threads T] [--repeat R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

import numpy as np

import dlc
from dlc import _core

SIZES = (128, 256, 512, 1024, 2048)


def median_s(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: packing buffers, page faults, thread start
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(sizes: tuple[int, ...], repeat: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        reps = max(3, repeat if n <= 512 else repeat // 3)
        ours = median_s(lambda: _core.gemm_f32(a, b), reps)
        numpy = median_s(lambda: a @ b, reps)
        flop = 2.0 * n ** 3
        rows.append({"n": n, "dlc_s": ours, "numpy_s": numpy, "dlc_gflops": flop / ours / 1e9,
                     "numpy_gflops": flop / numpy / 1e9, "ratio": numpy / ours})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        dlc.set_num_threads(args.threads)
    rows = run(SIZES, args.repeat)
    print(f"threads {dlc.get_num_threads()} (dlc); NumPy uses its BLAS's own setting")
    print(f"{'n':>6} {'dlc GFLOP/s':>12} {'NumPy GFLOP/s':>14} {'dlc/NumPy':>10}")
    for r in rows:
        print(f"{r['n']:>6} {r['dlc_gflops']:>12.1f} {r['numpy_gflops']:>14.1f} {r['ratio']:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
