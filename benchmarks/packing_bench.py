"""Weights packed once, measured: the same inference plan with its weights packed ahead (what dlc runs) and
packing them on every call (set_weight_packing(False)); one GEMM with packed weights against MLAS (a
one-MatMul ONNX model in ONNX Runtime, one intra-op thread); and, for few rows, a weight packed ahead against
streaming it (the row limits `packed_*_rows` of each kernel path in csrc/kernels/gemm/gemm_cpu.cpp).

Everything is timed in one process, in alternating blocks (A, then B, a pause before each block); a ratio is
taken per round (median of A's block over median of B's) and the table gives the median ratio over the rounds,
so both sides of every ratio saw the same moments of a shared machine.

    python benchmarks/packing_bench.py [--part workloads,gemm,small-m] [--threads 1,2] [--rounds 7]
                                       [--block 20] [--isa avx512] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import dlc
from dlc import _core
from dlc.bench import label_graph, random_batch
from dlc.model import empty_aligned
from host import cpu_name

MODELS = Path(__file__).resolve().parent.parent / "models"
WORKLOADS = {"mlp": 64, "gelu_mlp": 256, "transformer": 8, "lenet": 64}  # reference batches (workloads.md)
# (label, M, K, N): x[M, K] @ W[K, N], the weight products of the workloads (a transformer's rows are batch x
# sequence, an LSTM's input projection batch x time).
GEMM_SHAPES = (
    ("mlp fc1 b64", 64, 784, 512), ("mlp fc2 b64", 64, 512, 256), ("mlp fc3 b64", 64, 256, 10),
    ("mlp fc1 b1", 1, 784, 512), ("gelu fc1", 256, 256, 1024), ("gelu fc2", 256, 1024, 256),
    ("gelu fc1 b1", 1, 256, 1024), ("ffn up", 512, 128, 512), ("ffn down", 512, 512, 128),
    ("qkv", 512, 128, 384), ("lstm input", 1024, 64, 512), ("lstm step", 32, 128, 512),
    ("lenet fc1", 64, 400, 120),
)
Call = Callable[[], Any]


def ratio_rounds(a: Call, b: Call, rounds: int, block: int, pause: float = 0.2) -> dict[str, float]:
    """Median per-call ms of a and b, and the median over rounds of the per-round ratio a / b (each round times
    a block of each, in turns: a first in even rounds, b first in odd ones)."""
    for _ in range(3):
        a()
        b()
    ratios, ta_all, tb_all = [], [], []
    for r in range(rounds):
        medians = [0.0, 0.0]
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):  # a first in even rounds, b first in odd ones
            time.sleep(pause)
            ts = []
            for _ in range(block):
                t0 = time.perf_counter()
                (a, b)[i]()
                ts.append(time.perf_counter() - t0)
            medians[i] = statistics.median(ts)
        ta_all.append(medians[0])
        tb_all.append(medians[1])
        ratios.append(medians[0] / medians[1])
    return {"a_ms": 1e3 * statistics.median(ta_all), "b_ms": 1e3 * statistics.median(tb_all),
            "ratio": statistics.median(ratios)}


def workload_rows(threads: int, rounds: int, block: int) -> list[dict[str, Any]]:
    dlc.set_num_threads(threads)
    rows = []
    for name, ref in WORKLOADS.items():
        for batch in (ref, 1):
            dims = {"N": batch}
            program = dlc.compile(str(MODELS / f"{name}.dlm"), dims=dims)
            data = random_batch(program, label_graph(program, dims), np.random.default_rng(0), dims)
            plan = program.compile_plan(dims, training=False).plan
            inputs = {k: v for k, v in data.items() if k in program.model.used_inputs()}

            def run(pack: bool) -> Call:
                def call() -> Any:
                    plan.set_weight_packing(pack)
                    return program(**inputs)
                return call
            r = ratio_rounds(run(True), run(False), rounds, block)
            plan.set_weight_packing(True)
            rows.append({"workload": name, "batch": batch, "threads": threads, "packed_ms": r["a_ms"],
                         "unpacked_ms": r["b_ms"], "packed/unpacked": r["ratio"],
                         "packed_bytes": int(plan.packed_bytes)})
            print(f"  {name:12s} N={batch:<4d} {threads} thr  packed {r['a_ms']:.4f} ms  unpacked {r['b_ms']:.4f} ms"
                  f"  ratio {r['ratio']:.3f}  ({plan.packed_bytes / 2**20:.2f} MiB packed)", flush=True)
    return rows


def train_rows(threads: int, rounds: int, block: int) -> list[dict[str, Any]]:
    """A training step whose gradient plan packs its weights (each step writes them, so it packs them again
    every step) against the same step packing B inside each GEMM call: what decides `pack` for training plans."""
    dlc.set_num_threads(threads)
    rows = []
    for name, batch in WORKLOADS.items():
        dims = {"N": batch}
        program = dlc.compile(str(MODELS / f"{name}.dlm"), dims=dims)
        data = random_batch(program, label_graph(program, dims), np.random.default_rng(0), dims)
        program.train_step(**data)
        plan = program.trainer.training_plan("grads", dims, recipe_attack=True)[0].plan

        def step(pack: bool) -> Call:
            def call() -> Any:
                plan.set_weight_packing(pack)
                return program.train_step(**data)
            return call
        r = ratio_rounds(step(True), step(False), rounds, block)
        plan.set_weight_packing(False)
        rows.append({"workload": name, "batch": batch, "threads": threads, "packed_ms": r["a_ms"],
                     "unpacked_ms": r["b_ms"], "packed/unpacked": r["ratio"]})
        print(f"  {name:12s} N={batch:<4d} {threads} thr  packed {r['a_ms']:.3f} ms  unpacked {r['b_ms']:.3f} ms  "
              f"ratio {r['ratio']:.3f}", flush=True)
    return rows


def dlc_matmul(x: np.ndarray, w: np.ndarray, pack: bool, trans_b: bool = False, small_m: str = "") -> Call:
    """y = x @ op(W) as a one-step dlc plan, W a parameter (packed once when `pack`), y computed in place;
    small_m forces a form for few rows (gemm_force_small_m) while the plan packs and runs."""
    (m, k), n = x.shape, w.shape[0] if trans_b else w.shape[1]
    plan = _core.Plan(m * n * 4)
    xs = plan.add_slot(2, 0, 0, [m, k])
    ws = plan.add_slot(1, 0, 0, list(w.shape))
    ys = plan.add_slot(0, 0, 0, [m, n])
    plan.add_step("matmul", "matmul", [xs, ws], [ys], [0, int(trans_b), 0], [], -1)
    plan.set_num_inputs(1)
    plan.set_outputs([ys])
    plan.set_output_home(0, [ys])
    plan.set_persistent([w])
    plan.set_param_versions(_core.ParamVersions(1))
    plan.set_weight_packing(pack)
    out = empty_aligned((m, n), np.dtype(np.float32))

    def call() -> Any:
        _core.gemm_force_small_m(small_m)
        try:
            return plan.run([x], [out])
        finally:
            _core.gemm_force_small_m("")
    _core.gemm_force_small_m(small_m)
    try:
        plan.prepack()
    finally:
        _core.gemm_force_small_m("")
    return call


def small_m_rows(threads: int, rounds: int, block: int) -> list[dict[str, Any]]:
    """Few rows: B packed ahead and read by the blocked loop, against B streamed (read in place), per shape."""
    dlc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for trans_b in (False, True):
        for k, n in ((784, 512), (256, 1024), (1024, 256), (400, 120), (128, 512)):
            cells = []
            for m in (2, 4, 8, 16, 32, 64):
                x = rng.standard_normal((m, k)).astype(np.float32)
                w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
                r = ratio_rounds(dlc_matmul(x, w, True, trans_b, "packed"), dlc_matmul(x, w, True, trans_b, "stream"),
                                 rounds, block, pause=0.05)
                rows.append({"trans_b": trans_b, "M": m, "K": k, "N": n, "threads": threads,
                             "packed/stream": r["ratio"]})
                cells.append(f"M={m}: {r['ratio']:.2f}")
            print(f"  {_core.gemm_kernel_name()} B{'^T' if trans_b else ''} K={k} N={n}  " + "  ".join(cells),
                  flush=True)
    return rows


def ort_matmul(x: np.ndarray, w: np.ndarray, threads: int, directory: str) -> Call:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.shape[0], w.shape[1]])],
        [numpy_helper.from_array(w, "w")])
    path = str(Path(directory) / "matmul.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x})


def gemm_rows(threads: int, rounds: int, block: int) -> list[dict[str, Any]]:
    dlc.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, m, k, n in GEMM_SHAPES:
            x = rng.standard_normal((m, k)).astype(np.float32)
            w = rng.standard_normal((k, n)).astype(np.float32)
            ort = ort_matmul(x, w, threads, tmp)
            packed = ratio_rounds(dlc_matmul(x, w, True), ort, rounds, block)
            unpacked = ratio_rounds(dlc_matmul(x, w, False), ort, rounds, block)
            rows.append({"shape": label, "M": m, "K": k, "N": n, "threads": threads, "dlc_packed_ms": packed["a_ms"],
                         "ort_ms": packed["b_ms"], "packed/ort": packed["ratio"],
                         "unpacked/ort": unpacked["ratio"]})
            print(f"  {label:12s} {m}x{k}x{n} {threads} thr  packed/ORT {packed['ratio']:.3f}  "
                  f"per-call packing/ORT {unpacked['ratio']:.3f}  (ORT {packed['b_ms']:.4f} ms)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="workloads,gemm",
                        help="comma-separated: workloads, gemm, small-m, train")
    parser.add_argument("--isa", default="", help="a GEMM kernel path to force (avx512, avx2, scalar)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=int, default=20, help="calls per block")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    parts = args.part.split(",")
    result: dict[str, Any] = {"cpu": cpu_name(), "workloads": [], "gemm": [], "small_m": [], "train": []}
    _core.gemm_force_isa(args.isa)
    print(f"{result['cpu']}; load average {' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}")
    for threads in (int(t) for t in args.threads.split(",")):
        if "workloads" in parts:
            print(f"inference, weights packed ahead / packed on every call ({threads} thread(s)):")
            result["workloads"] += workload_rows(threads, args.rounds, args.block)
        if "gemm" in parts:
            print(f"one GEMM, dlc / ONNX Runtime (MLAS) ({threads} thread(s)):")
            result["gemm"] += gemm_rows(threads, args.rounds, args.block)
        if "train" in parts:
            print(f"training step, gradient plan packing its weights / not ({threads} thread(s)):")
            result["train"] += train_rows(threads, args.rounds, args.block)
        if "small-m" in parts:
            print(f"few rows, B packed ahead / B streamed ({threads} thread(s)):")
            result["small_m"] += small_m_rows(threads, args.rounds, args.block)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
