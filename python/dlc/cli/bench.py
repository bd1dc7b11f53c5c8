"""`dlc bench MODEL -D N=..`: time the plan fused and unfused, kernel by kernel."""

from __future__ import annotations

import argparse
import json

from .common import add_precision_argument, add_threads_argument


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import format_bench, run_bench
    from ..profiler import Profile
    trace = Profile() if args.trace else None
    result = run_bench(args.model, dict(args.dims), args.train, args.threads, args.repeat, args.warmup,
                       seed=args.seed, trace=trace, precision=args.precision or "f32")
    if trace is not None:
        trace.save(args.trace)
    print(json.dumps(result) if args.json else format_bench(result))
    if trace is not None and not args.json:
        print(f"wrote {args.trace} (Chrome trace events: open it in ui.perfetto.dev or chrome://tracing)")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[model], help="time the plan fused and unfused, kernel by kernel",
                       description="Runs the same plan fused and unfused (alternating, after warm-up) and prints "
                                   "the medians, the speedup, each variant's arena and a per-kernel table.")
    p.add_argument("--train", action="store_true", help="time a whole training step instead of inference")
    add_threads_argument(p)
    add_precision_argument(p)
    p.add_argument("--repeat", type=int, default=30, help="timed runs (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--trace", metavar="FILE.json",
                   help="write every profiled run, kernel by kernel, as Chrome trace-event JSON (Perfetto)")
    p.set_defaults(func=cmd_bench)
