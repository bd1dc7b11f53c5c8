"""Runs every reference workload present in models/ (benchmarks/workloads.md): dlc inference and
training step, fused and unfused, compile time and the training step's memory plan; and, where PyTorch and
ONNX Runtime are installed, the same shapes on them in the same run, with the ratios dlc / ORT (inference)
and dlc / PyTorch eager (training step). Writes benchmarks/results/workloads.{md,json}.

    python benchmarks/run_workloads.py [--threads 2] [--repeat 30] [--warmup 5] [--only mlp,gelu_mlp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import dlc
from dlc.bench import run_bench

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from torch_models import WORKLOADS, Workload, loss_of  # noqa: E402

MODELS = HERE.parent / "models"
RESULTS = HERE / "results"


def median_ms(fn: Callable[[], Any], repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def compile_seconds(path: Path, dims: dict[str, int]) -> float:
    """What `dlc compile` costs: building the Program, then its inference and training-step plans."""
    t0 = time.perf_counter()
    program = dlc.compile(str(path), dims=dims)
    program.compile_plan(dims)
    program.training_plan("step", dims)
    return time.perf_counter() - t0


def peers(w: Workload, threads: int, repeat: int, warmup: int) -> dict[str, float]:
    """PyTorch eager (inference, training step with Adam) and ONNX Runtime (inference), where installed."""
    out: dict[str, float] = {}
    try:
        import torch
    except ImportError:
        return out
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = w.make()
    x = torch.randn(w.batch, *w.x_shape)
    y = torch.randint(0, w.classes or 2, (w.batch,))
    model.eval()
    with torch.no_grad():
        out["torch_infer_ms"] = median_ms(lambda: model(x), repeat, warmup)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(w, model(x), y).backward()
        opt.step()
    out["torch_train_ms"] = median_ms(step, repeat, warmup)
    try:
        import onnxruntime as ort
    except ImportError:
        return out
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / f"{w.name}.onnx")
        torch.onnx.export(model, (x,), path, opset_version=17, input_names=["x"], output_names=["out"],
                          dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        out["ort_infer_ms"] = median_ms(lambda: session.run(None, feed), repeat, warmup)
    return out


def measure(name: str, threads: int, repeat: int, warmup: int) -> dict[str, Any]:
    w = WORKLOADS[name]
    path = MODELS / f"{name}.dlm"
    dims = {"N": w.batch}
    infer = run_bench(str(path), dims, train=False, threads=threads, repeat=repeat, warmup=warmup)
    train = run_bench(str(path), dims, train=True, threads=threads, repeat=repeat, warmup=warmup)
    mem = train["fused"]["memory"]
    row: dict[str, Any] = {
        "workload": name, "dims": dims,
        "compile_s": min(compile_seconds(path, dims) for _ in range(3)),
        "infer_fused_ms": infer["fused_ms"], "infer_unfused_ms": infer["unfused_ms"],
        "train_fused_ms": train["fused_ms"], "train_unfused_ms": train["unfused_ms"],
        "train_speedup": train["speedup"], "infer_speedup": infer["speedup"],
        "arena_bytes": mem["arena_bytes"], "lower_bound_bytes": mem["lower_bound_bytes"],
        "naive_bytes": mem["naive_bytes"], "gradient_bytes": mem.get("gradient_bytes", 0),
        "arena_over_lower_bound": mem["arena_bytes"] / max(1, mem["lower_bound_bytes"]),
        "arena_over_naive": mem["arena_bytes"] / max(1, mem["naive_bytes"]),
        "unfused_arena_bytes": train["unfused"]["memory"]["arena_bytes"],
        "top_kernels_train": train["fused"]["kernels"][:5],
    }
    row.update(peers(w, threads, repeat, warmup))
    if "ort_infer_ms" in row:
        row["dlc_over_ort_infer"] = row["infer_fused_ms"] / row["ort_infer_ms"]
    if "torch_train_ms" in row:
        row["dlc_over_torch_train"] = row["train_fused_ms"] / row["torch_train_ms"]
        row["dlc_over_torch_infer"] = row["infer_fused_ms"] / row["torch_infer_ms"]
    return row


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def markdown(rows: list[dict[str, Any]], threads: int) -> str:
    lines = [f"# Reference workloads (threads {threads}; medians in ms)", "",
             "| workload | compile s | infer fused | infer unfused | train fused | train unfused | train speedup "
             "| arena / LB | arena / naive | arena MiB | grads MiB | ORT infer | dlc/ORT | torch train | dlc/torch |",
             "|---|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['compile_s']:.3f} | {r['infer_fused_ms']:.2f} | {r['infer_unfused_ms']:.2f} "
            f"| {r['train_fused_ms']:.2f} | {r['train_unfused_ms']:.2f} | {r['train_speedup']:.2f} "
            f"| {r['arena_over_lower_bound']:.3f} | {r['arena_over_naive']:.3f} | {r['arena_bytes'] / 2**20:.2f} "
            f"| {r['gradient_bytes'] / 2**20:.2f} | {_fmt(r, 'ort_infer_ms', '.2f')} "
            f"| {_fmt(r, 'dlc_over_ort_infer', '.2f')} | {_fmt(r, 'torch_train_ms', '.2f')} "
            f"| {_fmt(r, 'dlc_over_torch_train', '.2f')} |")
    lines += ["", "Targets: arena / LB <= 1.1 and arena / naive <= 0.5 per training step; gelu_mlp and lstm train "
              "speedup >= 1.3; compile < 0.5 s; dlc/ORT < 1 (inference), dlc/torch < 1 (training step)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", default=None, help="comma-separated workload names")
    args = parser.parse_args()
    names = [n for n in WORKLOADS if (MODELS / f"{n}.dlm").exists()]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    missing = [n for n in WORKLOADS if not (MODELS / f"{n}.dlm").exists()]
    if missing:
        print(f"not in models/ yet: {', '.join(missing)}", file=sys.stderr)
    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(measure(name, args.threads, args.repeat, args.warmup))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workloads.json").write_text(json.dumps(rows, indent=2, default=float))
    text = markdown(rows, args.threads)
    (RESULTS / "workloads.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    np.random.seed(0)
    raise SystemExit(main())
