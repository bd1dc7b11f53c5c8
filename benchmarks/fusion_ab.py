"""Fused against unfused, for every reference workload at its reference batch and at batch 1, inference and
training step: the measurements behind "fusion never loses" (docs/optimizer.md).

Each cell is `dlc bench`'s comparison (dlc.bench.run_bench): both plans compiled from the same file and seed, run
in turns (A B A B) after warm-up, medians of the call a user makes. The per-kernel profiles of both variants go
to the JSON file, so a loss can be traced to the kernels that cause it.

    python benchmarks/fusion_ab.py [--threads 2] [--repeat 30] [--only mlp,lenet] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_BATCH = {"mlp": 64, "lenet": 64, "resnet8": 32, "lstm": 32, "transformer": 8, "gelu_mlp": 256,
                   "ew_chain": 2048}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--only", help="comma-separated workloads (default: all)")
    ap.add_argument("--json", help="write every cell, kernel profiles included")
    args = ap.parse_args()
    from host import cpu_name
    from dlc.bench import run_bench
    names = args.only.split(",") if args.only else list(REFERENCE_BATCH)
    cells = []
    print(f"# Fused / unfused ({cpu_name()}, {args.threads} threads, medians of {args.repeat} alternating calls; "
          f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())})\n")
    print("| workload | batch | mode | fused ms | unfused ms | unfused / fused |\n|---|---|---|---|---|---|")
    for name in names:
        for batch in (REFERENCE_BATCH[name], 1):
            for train in (False, True):
                r = run_bench(str(ROOT / "models" / f"{name}.dlm"), {"N": batch}, train=train, threads=args.threads,
                              repeat=args.repeat, warmup=5)
                cells.append({"workload": name, "batch": batch, **r})
                print(f"| {name} | {batch} | {'train' if train else 'infer'} | {r['fused_ms']:.3f} | "
                      f"{r['unfused_ms']:.3f} | {r['speedup']:.2f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "threads": args.threads, "cells": cells}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
