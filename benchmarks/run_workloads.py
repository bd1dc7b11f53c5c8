"""Runs every reference workload present in models/ (benchmarks/workloads.md) against its peers, in one
process, in alternating blocks with a pause between blocks (peers.alternating_ms): dlc fused and unfused,
PyTorch eager, torch.compile, ONNX Runtime and OpenVINO (f32) for inference at the reference batch and at
batch 1; dlc fused and unfused, PyTorch eager, torch.compile and JAX (a jit-compiled step, dense workloads)
for the training step. Peers that are not installed are left out (`pip install ".[bench]"` installs them).
Also: compile time, the training step's memory plan, and the fraction of the GEMM roofline each workload
reaches (its FLOPs, counted on the PyTorch twin / its time / the 2-thread GEMM rate measured in the same run).
Writes benchmarks/results/workloads.{md,json} (2 threads) or workloads_Nthread.{md,json}, naming the host CPU.

    python benchmarks/run_workloads.py [--threads 2] [--block 20] [--rounds 3] [--only mlp,gelu_mlp]
                                       [--no-compile-peers]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import dlc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from host import cpu_name, load_average  # noqa: E402
from jax_models import jax_train_call  # noqa: E402
from peers import Call, alternating_ms, onnx_calls, torch_calls  # noqa: E402
from torch_models import WORKLOADS, Workload, loss_of  # noqa: E402

MODELS = HERE.parent / "models"
RESULTS = HERE / "results"
INFER_PEERS = ("ort_infer", "openvino_infer", "torch_infer", "torch_compile_infer")
TRAIN_PEERS = ("torch_train", "torch_compile_train", "jax_train")


def gemm_peak_gflops(threads: int, n: int = 1024, calls: int = 15) -> float:
    """dlc's f32 GEMM at n x n x n, median GFLOP/s: the practical dense-compute ceiling of this machine."""
    from dlc import _core
    dlc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    _core.gemm_f32(a, b, False, False)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        _core.gemm_f32(a, b, False, False)
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def flops(w: Workload, batch: int) -> tuple[float, float]:
    """(inference, training step) FLOPs of the PyTorch twin: forward, and forward + backward."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return float("nan"), float("nan")
    model = w.make()
    x, y = torch.randn(batch, *w.x_shape), torch.randint(0, w.classes or 2, (batch,))
    with FlopCounterMode(display=False) as fwd:
        with torch.no_grad():
            model(x)
    with FlopCounterMode(display=False) as step:
        loss_of(w, model(x), y).backward()
    return float(fwd.get_total_flops()), float(step.get_total_flops())


def dlc_calls(w: Workload, batch: int, train: bool) -> tuple[dict[str, Call], dict[str, Any]]:
    """dlc fused and unfused (inference, and the training step when `train`), plus compile time and memory."""
    from dlc.bench import label_graph, random_batch
    dims = {"N": batch}
    calls: dict[str, Call] = {}
    info: dict[str, Any] = {}
    for fuse in (True, False):
        tag = "" if fuse else "_unfused"
        t0 = time.perf_counter()
        program = dlc.compile(MODELS / f"{w.name}.dlm", dims=dims, fuse=fuse)
        program.compile_plan(dims, training=False)
        step = program.training_plan("step", dims)[0] if train else None
        info[f"compile_s{tag}"] = time.perf_counter() - t0
        data = random_batch(program, label_graph(program, dims), np.random.default_rng(0), dims)
        inputs = {k: v for k, v in data.items() if k in program.inputs}
        calls[f"dlc{tag}_infer"] = (lambda p, i: lambda: p(**i))(program, inputs)
        if step is not None:
            calls[f"dlc{tag}_train"] = (lambda p, d: lambda: p.train_step(**d))(program, data)
            mem = step.memory.as_dict()
            info[f"memory{tag}"] = mem
    return calls, info


def measure(name: str, threads: int, block: int, rounds: int, compile_peers: bool, peak: float) -> dict[str, Any]:
    w = WORKLOADS[name]
    row: dict[str, Any] = {"workload": name, "batch": w.batch}
    for batch in (w.batch, 1):
        ref = batch == w.batch
        calls, info = dlc_calls(w, batch, train=ref)
        calls.update(torch_calls(w, threads, batch))
        if compile_peers:
            calls.update(torch_calls(w, threads, batch, compiled=True))
        calls.update(onnx_calls(w, threads, batch))
        jax_step = jax_train_call(name, batch) if ref else None
        if jax_step is not None:
            calls["jax_train"] = jax_step
        if not ref:
            calls = {k: v for k, v in calls.items() if k.endswith("_infer")}
        dlc.set_num_threads(threads)
        times = alternating_ms(calls, block=block, rounds=rounds)
        suffix = "" if ref else "_b1"
        row.update({f"{k}_ms{suffix}": v for k, v in times.items()})
        if ref:
            row.update(info)
    for suffix in ("", "_b1"):
        peers = {k: row[f"{k}_ms{suffix}"] for k in INFER_PEERS if f"{k}_ms{suffix}" in row}
        if peers:
            best = min(peers, key=peers.get)
            row[f"best_infer_peer{suffix}"] = best
            row[f"dlc_over_best_infer{suffix}"] = row[f"dlc_infer_ms{suffix}"] / peers[best]
    peers = {k: row[f"{k}_ms"] for k in TRAIN_PEERS if f"{k}_ms" in row}
    if peers:
        best = min(peers, key=peers.get)
        row["best_train_peer"] = best
        row["dlc_over_best_train"] = row["dlc_train_ms"] / peers[best]
    row["train_fused_speedup"] = row["dlc_unfused_train_ms"] / row["dlc_train_ms"]
    row["infer_fused_speedup"] = row["dlc_unfused_infer_ms"] / row["dlc_infer_ms"]
    f_infer, f_train = flops(w, w.batch)
    row["gflop_infer"], row["gflop_train"] = f_infer / 1e9, f_train / 1e9
    row["roofline_infer"] = f_infer / (row["dlc_infer_ms"] / 1e3) / 1e9 / peak
    row["roofline_train"] = f_train / (row["dlc_train_ms"] / 1e3) / 1e9 / peak
    return row


def _cell(row: dict[str, Any], key: str, spec: str = ".2f") -> str:
    value = row.get(key)
    return format(value, spec) if isinstance(value, (int, float)) else (value or "-")


def markdown(rows: list[dict[str, Any]], threads: int, peak: float, load: str) -> str:
    lines = [f"# Reference workloads (threads {threads}; medians in ms; {load})", "",
             "All runtimes of a workload timed in one process, in alternating blocks with 0.2 s pauses.", "",
             "## Inference, reference batch", "",
             "| workload | dlc | dlc unfused | ORT | OpenVINO f32 | torch | torch.compile | dlc / best peer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | " + " | ".join(_cell(r, f"{k}_ms") for k in (
            "dlc_infer", "dlc_unfused_infer", *INFER_PEERS)) + f" | {_cell(r, 'dlc_over_best_infer')} |")
    lines += ["", "## Inference, batch 1", "",
              "| workload | dlc | dlc unfused | ORT | OpenVINO f32 | torch | torch.compile | dlc / best peer |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | " + " | ".join(_cell(r, f"{k}_ms_b1") for k in (
            "dlc_infer", "dlc_unfused_infer", *INFER_PEERS)) + f" | {_cell(r, 'dlc_over_best_infer_b1')} |")
    lines += ["", "## Training step (forward, loss, backward, Adam)", "",
              "| workload | dlc | dlc unfused | fused speedup | torch | torch.compile | JAX | dlc / best peer "
              "| arena / LB | arena MiB | compile s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = r.get("memory", {})
        lines.append(f"| {r['workload']} | " + " | ".join(_cell(r, f"{k}_ms") for k in (
            "dlc_train", "dlc_unfused_train")) + f" | {_cell(r, 'train_fused_speedup')} | " + " | ".join(
            _cell(r, f"{k}_ms") for k in TRAIN_PEERS) + f" | {_cell(r, 'dlc_over_best_train')} "
            f"| {mem.get('arena_bytes', 0) / max(1, mem.get('lower_bound_bytes', 1)):.3f} "
            f"| {mem.get('arena_bytes', 0) / 2**20:.2f} | {_cell(r, 'compile_s', '.3f')} |")
    lines += ["", f"## Fraction of the GEMM roofline (2-thread dlc GEMM, n=1024: {peak:.0f} GFLOP/s)", "",
              "| workload | GFLOP infer | infer fraction | GFLOP train step | train fraction |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {_cell(r, 'gflop_infer', '.4f')} | {_cell(r, 'roofline_infer', '.3f')} "
                     f"| {_cell(r, 'gflop_train', '.4f')} | {_cell(r, 'roofline_train', '.3f')} |")
    lines += ["", "FLOPs are the PyTorch twin's (torch.utils.flop_counter: matmuls and convolutions). Targets: dlc / "
              "best peer < 1 (inference at both batches, training step); fused speedup >= 1.15 (gelu_mlp) and >= 2 "
              "(ew_chain)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="comma-separated workload names")
    parser.add_argument("--no-compile-peers", dest="compile_peers", action="store_false",
                        help="leave out torch.compile (its compilation takes minutes on a small machine)")
    args = parser.parse_args()
    names = [n for n in WORKLOADS if (MODELS / f"{n}.dlm").exists()]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    load = f"{cpu_name()}; {load_average()}"
    peak = gemm_peak_gflops(args.threads)
    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(measure(name, args.threads, args.block, args.rounds, args.compile_peers, peak))
    RESULTS.mkdir(exist_ok=True)
    # Two threads is the reference table others read (distributed.py, the docs); other counts get their own file.
    stem = "workloads" if args.threads == 2 else f"workloads_{args.threads}thread"
    (RESULTS / f"{stem}.json").write_text(json.dumps({"load": load, "gemm_peak_gflops": peak, "rows": rows},
                                                       indent=2, default=float))
    text = markdown(rows, args.threads, peak, load)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
