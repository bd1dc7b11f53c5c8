"""The fixed cost of one inference call: dlc's `program(**inputs)` beside ONNX Runtime's `session.run`.

Two models, each compiled by dlc and exported by dlc's own ONNX exporter (same graph, same weights) for ORT:
- `relu` of an f32[1, 16] input: the kernel is nothing, so the time is the call path (input checks, dimension
  binding, output allocation, the GIL released and taken back);
- mlp (models/mlp.dlm) at batch 1: the call path plus three small GEMMs.

Both runtimes are timed in one process, in alternating blocks with a pause between blocks (see peers.py), and
each reports the median of every call timed. The host CPU is named with the figures: only the ratios measured
side by side here compare, never absolute times across runs.

    python benchmarks/call_overhead.py [--threads 2] [--calls 3000] [--block 250] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RELU = """input x: f32[N, 16]
output y = relu(x)
"""


def alternating_us(calls: dict[str, Callable[[], Any]], total: int, block: int,
                   pause: float = 0.2) -> dict[str, float]:
    """Median microseconds per call of each entry: `total` calls each, in blocks of `block` taken in turns."""
    for call in calls.values():
        for _ in range(50):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(max(1, total // block)):
        for name, call in calls.items():
            time.sleep(pause)
            ts = times[name]
            for _ in range(block):
                t0 = clock()
                call()
                ts.append(clock() - t0)
    return {name: 1e6 * statistics.median(ts) for name, ts in times.items()}


def pair(name: str, program: Any, feed: dict[str, np.ndarray], threads: int, tmp: str) -> dict[str, Callable[[], Any]]:
    """dlc's call and ORT's session.run on the same model (exported by dlc) and the same inputs."""
    import onnxruntime as ort
    from dlc.onnx import to_onnx
    path = str(Path(tmp) / f"{name}.onnx")
    to_onnx(program, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    ref = session.run(None, feed)[0]
    got = next(iter(program(**feed).values()))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)  # the same model, or the timing means nothing
    return {"dlc": lambda: program(**feed), "ort": lambda: session.run(None, feed)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=3000, help="calls timed per runtime and model")
    ap.add_argument("--block", type=int, default=250)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import dlc
    dlc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    relu = dlc.compile(source=RELU, dims={"N": 1})
    mlp = dlc.compile(str(ROOT / "models" / "mlp.dlm"), dims={"N": 1})
    feeds = {"relu [1, 16]": (relu, {"x": rng.standard_normal((1, 16), dtype=np.float32)}),
             "mlp batch 1": (mlp, {"x": rng.standard_normal((1, 784), dtype=np.float32)})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (program, feed) in feeds.items():
            us = alternating_us(pair(label.split()[0], program, feed, args.threads, tmp), args.calls, args.block)
            rows.append({"model": label, "dlc_us": us["dlc"], "ort_us": us["ort"], "ratio": us["dlc"] / us["ort"]})
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"# Call overhead: dlc vs ONNX Runtime ({cpu_name()}, {args.threads} threads, medians of "
          f"{args.calls} calls, load average before the end: {load}, Python {sys.version.split()[0]})\n")
    print("| model | dlc µs | ORT µs | dlc / ORT |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['dlc_us']:.1f} | {r['ort_us']:.1f} | {r['ratio']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "threads": args.threads, "load": load,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
