"""Products with few rows of C (batch 1 and tiny batches): our GEMM reading B in place (the direct-B and
small-M dot kernels) against packing B first, on each kernel path this CPU has, forced with
`gemm_force_small_m("stream" | "packed")`. The dense layers of the reference workloads give K and N, with B
stored as given (`x @ W`) and transposed (ONNX's Gemm with transB, `dY @ W^T`). Both forms are timed in
turn, round after round (gemm_bench.time_rounds), so load from other processes falls on both alike; the
table gives packed / stream, the ratio of median times (above 1: streaming is faster). The row limits in
csrc/kernels/gemm/gemm_cpu.cpp (Path::direct_b_rows, small_dot_rows) come from this table.

    python benchmarks/small_m_bench.py [--threads 1] [--paths avx512,avx2,scalar] [--rows 2,4,8,16,32,64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dlc
from dlc import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gemm_bench  # noqa: E402
from gemm_bench import PATHS, available_paths, time_rounds  # noqa: E402

# (label, K, N): mlp's three layers, gelu_mlp's two, lenet's first dense layer, the transformer's FFN.
LAYERS = (("mlp fc1", 784, 512), ("mlp fc2", 512, 256), ("gelu fc1", 256, 1024), ("gelu fc2", 1024, 256),
          ("lenet fc1", 400, 120), ("ffn up", 128, 512))


def forced(isa: str, mode: str, a: np.ndarray, b: np.ndarray, tb: bool) -> Callable[[], Any]:
    gemm = _core.gemm_f64 if a.dtype == np.float64 else _core.gemm_f32

    def call() -> Any:
        _core.gemm_force_isa(isa)
        _core.gemm_force_small_m(mode)
        try:
            return gemm(a, b, False, tb)
        finally:
            _core.gemm_force_small_m("")
            _core.gemm_force_isa("")
    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--rows", default="2,4,8,16,32,64")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--f64", action="store_true")
    args = parser.parse_args()
    paths = available_paths(tuple(args.paths.split(",")))
    rows = [int(r) for r in args.rows.split(",")]
    dtype = np.float64 if args.f64 else np.float32
    before = dlc.get_num_threads()
    dlc.set_num_threads(args.threads)
    if args.threads == 1:
        gemm_bench.SETTLE_S = 0.01  # no thread pool spinning between the calls to wait out
    rng = np.random.default_rng(0)
    try:
        print(f"{np.dtype(dtype).name}, {args.threads} thread(s); packed / stream (median times; > 1: streaming "
              "B is faster)")
        print(f"{'layer':>10} {'K':>5} {'N':>5} {'B':>2} {'path':>7} " + " ".join(f"{'M=' + str(m):>7}"
                                                                                for m in rows))
        for label, k, n in LAYERS:
            for tb in (False, True):
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                for isa in paths:
                    cells = []
                    for m in rows:
                        a = rng.standard_normal((m, k)).astype(dtype)
                        fns = {mode: forced(isa, mode, a, b, tb) for mode in ("stream", "packed")}
                        t = time_rounds(fns, args.repeat, budget_s=1.0)
                        cells.append(statistics.median(t["packed"]) / statistics.median(t["stream"]))
                    print(f"{label:>10} {k:>5} {n:>5} {'T' if tb else '-':>2} {isa:>7} "
                          + " ".join(f"{c:>7.2f}" for c in cells), flush=True)
    finally:
        dlc.set_num_threads(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
