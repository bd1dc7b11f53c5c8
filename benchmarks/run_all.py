"""Reproduces every performance table of issue 11 with one command, from a fresh `pip install ".[bench]"`:

    python benchmarks/run_all.py [--threads 2] [--quick]

runs, one after another (each in its own process, so no runtime's threads linger into the next):
  1. benchmarks/gemm_bench.py       -> gemm.json in benchmarks/results/ (dlc's GEMM paths vs NumPy's BLAS, 1 and N threads,
                                       the host CPU named: the dense-compute ceiling the roofline table divides by)
  2. benchmarks/run_workloads.py    -> benchmarks/results/workloads.{md,json}, then at 1 thread workloads_1thread.*
                                       (dlc vs ONNX Runtime, OpenVINO f32,
                                       PyTorch eager, torch.compile and JAX; fused / unfused; batch 1; roofline)
  3. benchmarks/contention.py       -> benchmarks/results/contention.{md,json} (slowdown beside busy loops)
Run it on as quiet a machine as you can: other processes' load changes every figure (ratios measured side by
side hold up best). --quick uses fewer calls per block (a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    block = ["--block", "5", "--rounds", "1"] if args.quick else []
    threads = ["--threads", str(args.threads)]
    (HERE / "results").mkdir(exist_ok=True)
    steps = [
        ["gemm_bench.py", "--threads", f"1,{args.threads}", "--paths", "avx512,avx2",
         "--json", str(HERE / "results" / "gemm.json"), *(["--repeat", "2"] if args.quick else [])],
        ["run_workloads.py", *threads, *block],
        # Issue 21's targets hold at one thread too (workloads_1thread.md; the training step's peers likewise).
        *([["run_workloads.py", "--threads", "1", *block]] if args.threads != 1 else []),
        ["contention.py", *threads, *block],
    ]
    for step in steps:
        print(f"== {' '.join(step)}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / step[0]), *step[1:]])
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
