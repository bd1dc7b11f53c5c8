"""How much a busy neighbour slows dlc down, next to how much it slows the peer down: ONNX Runtime for
inference, PyTorch eager for the training step (issue 11's contention targets).

For 0, 1 and 2 competitor processes (each a pure-Python busy loop, one core's worth of demand) every runtime
is timed in one process in alternating blocks with pauses (peers.alternating_ms); slowdown = median with the
competitors / median alone. On a 2-core machine a fair share gives 2x with one competitor and 3x with two;
the targets are <= 2.5x and <= 3.5x and no worse than the peer's. Writes benchmarks/results/contention.{md,json}.

    python benchmarks/contention.py [--threads 2] [--only mlp,resnet8] [--block 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from host import cpu_name, load_average  # noqa: E402
from peers import alternating_ms, dlc_calls, onnx_calls, torch_calls  # noqa: E402
from torch_models import WORKLOADS  # noqa: E402

MODELS = HERE.parent / "models"
RESULTS = HERE / "results"
DEFAULT = ("mlp", "lenet", "resnet8", "transformer")
PAIRS = (("infer", "dlc_infer", "ort_infer"), ("train", "dlc_train", "torch_train"))


def competitors(n: int) -> list[subprocess.Popen[bytes]]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5)  # let them reach full speed
    return procs


def measure(name: str, threads: int, block: int, rounds: int) -> dict[str, Any]:
    w = WORKLOADS[name]
    calls = {**dlc_calls(w, MODELS), **torch_calls(w, threads)}
    calls.update({k: v for k, v in onnx_calls(w, threads).items() if k == "ort_infer"})
    calls = {k: calls[k] for pair in PAIRS for k in pair[1:] if k in calls}
    row: dict[str, Any] = {"workload": name}
    for n in (0, 1, 2):
        procs = competitors(n)
        try:
            row[n] = alternating_ms(calls, block=block, rounds=rounds)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    for n in (1, 2):
        row[f"slowdown_{n}"] = {k: row[n][k] / row[0][k] for k in calls}
    return row


def markdown(rows: list[dict[str, Any]], threads: int, load: str) -> str:
    lines = [f"# Slowdown beside busy-loop competitors (threads {threads}; {load})", "",
             "Slowdown = median ms with the competitors / median ms alone, all runtimes of a row timed in one "
             "process in alternating blocks.", "",
             "| workload | mode | dlc alone ms | peer | peer alone ms | dlc x1 | peer x1 | dlc x2 | peer x2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for mode, mine, peer in PAIRS:
            if mine not in r[0]:
                continue
            s1, s2 = r["slowdown_1"], r["slowdown_2"]
            has = peer in r[0]
            lines.append(f"| {r['workload']} | {mode} | {r[0][mine]:.2f} | {peer.split('_')[0] if has else '-'} "
                         f"| {r[0][peer]:.2f} | {s1[mine]:.2f} | {s1[peer]:.2f} | {s2[mine]:.2f} | {s2[peer]:.2f} |"
                         if has else
                         f"| {r['workload']} | {mode} | {r[0][mine]:.2f} | - | - | {s1[mine]:.2f} | - "
                         f"| {s2[mine]:.2f} | - |")
    lines += ["", "Targets: dlc's slowdown <= the peer's, <= 2.5 with one competitor and <= 3.5 with two."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=",".join(DEFAULT), help="comma-separated workload names")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import dlc
    dlc.set_num_threads(args.threads)
    load = f"{cpu_name()}; {load_average()}"
    rows = []
    for name in args.only.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(measure(name, args.threads, args.block, args.rounds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "contention.json").write_text(json.dumps({"load": load, "rows": rows}, indent=2, default=float))
    text = markdown(rows, args.threads, load)
    (RESULTS / "contention.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
