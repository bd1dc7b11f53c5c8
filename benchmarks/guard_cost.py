"""What the non-finite guard costs a training step, workload by workload (issue 27).

Runs `dlc bench --train`'s comparison (dlc.bench.guard_turns: train_step, whose fused step plan is guarded,
in turns with the same step plan built without the guard, A B then B A) in several passes per workload, the
workloads themselves taking turns pass after pass, and prints each workload's per-pass costs and their median:
on a shared machine one pass can be off by several percent either way, the median of alternating passes less. `--clock cpu`
times each call in CPU time of the calling thread instead, on one thread: time the machine gives to other
processes then does not count (on a loaded host, wall-time ratios of small steps swing by tens of percent).

    python benchmarks/guard_cost.py [--passes 5] [--repeat 100] [--threads 2] [--clock wall|cpu] [--only mlp]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
from pathlib import Path

import dlc
from dlc.bench import _interleaved, _one_plan_step, _prepare, guard_turns

ROOT = Path(__file__).resolve().parent.parent
# The reference workloads (benchmarks/workloads.md) at their batch sizes.
WORKLOADS = {"mlp": 64, "gelu_mlp": 256, "lenet": 64, "resnet8": 32, "transformer": 8, "lstm": 32,
             "ew_chain": 2048}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=100, help="steps of each kind per pass")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--only", nargs="*", default=list(WORKLOADS))
    ap.add_argument("--aa", action="store_true",
                    help="also time the unguarded plan against an identical second one: the noise floor")
    args = ap.parse_args()
    if args.clock == "cpu":
        args.threads = 1  # the other threads' CPU time would not be counted
    dlc.set_num_threads(args.threads)
    variants = {name: _prepare(str(ROOT / "models" / f"{name}.dlm"), {"N": WORKLOADS[name]}, True, True, 0)
                for name in args.only}
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    noise: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.passes):
        for name, variant in variants.items():
            results[name].append(guard_turns(variant, args.repeat, args.warmup, clock))
            if args.aa:  # two identical unguarded plans, each with its own memory, in the same A B / B A turns
                plain, twin = _one_plan_step(variant), _one_plan_step(variant, mode="train")
                x = _interleaved([plain, twin], [None, None], args.repeat, args.warmup, clock)
                y = _interleaved([twin, plain], [None, None], args.repeat, args.warmup, clock)
                noise[name].append(100 * ((x[1] + y[0]) / (x[0] + y[1]) - 1))
    print(f"host CPU: {cpu_name()}; threads {args.threads}; {args.clock} time; {args.passes} passes x "
          f"2 x {args.repeat} steps of each")
    aa = " A/A per pass |" if args.aa else ""
    print(f"| workload | guarded ms (median) | unguarded ms (median) | guard cost per pass | median |{aa}")
    print("|---|---|---|---|---|" + ("---|" if args.aa else ""))
    for name, rows in results.items():
        costs = [100 * (g / p - 1) for g, p in rows]
        extra = f" {' / '.join(f'{c:+.1f}' for c in noise[name])} % |" if args.aa else ""
        print(f"| {name} N={WORKLOADS[name]} | {statistics.median(g for g, _ in rows):.3f} | "
              f"{statistics.median(p for _, p in rows):.3f} | {' / '.join(f'{c:+.1f}' for c in costs)} % | "
              f"{statistics.median(costs):+.1f} % |{extra}")


if __name__ == "__main__":
    main()
