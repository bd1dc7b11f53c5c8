"""The blocked convolution layout side by side (issue 22): for resnet8, lenet and the MobileNet-style ONNX fixture,
dlc's inference with the layout pass's choice (`auto`), with every tensor NCHW (`nchw`), and ONNX Runtime on the
same model (dlc's own ONNX export, or the fixture), at the reference batch and batch 1, on 1 and 2 threads, in
one process, alternating blocks with a pause between them; medians. Also resnet8's share of the 2-thread GEMM
peak (its FLOPs counted from the plan's convolutions and matmul / its time / dlc's 1024^3 f32 GEMM rate).

    python benchmarks/nchwc_bench.py [--rounds 7] [--block 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import dlc
from dlc import _core
from dlc.onnx import from_onnx

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"resnet8": ("models/resnet8.dlm", (3, 32, 32), 32), "lenet": ("models/lenet.dlm", (1, 28, 28), 64),
          "mobilenet": ("tests/onnx_fixtures/mobilenet.onnx", (3, 32, 32), 32)}


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def medians(calls: dict[str, Callable[[], Any]], rounds: int, block: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            call()
            t0 = time.perf_counter()
            for _ in range(block):
                call()
            times[name].append((time.perf_counter() - t0) / block * 1e3)
            time.sleep(0.05)
    return {k: statistics.median(v) for k, v in times.items()}


def gemm_peak_gflops(n: int = 1024) -> float:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    _core.gemm_f32(a, b, False, False)
    ts = []
    for _ in range(9):
        t0 = time.perf_counter()
        _core.gemm_f32(a, b, False, False)
        ts.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / statistics.median(ts) / 1e9


def plan_flops(program: Any, n: int) -> float:
    """2 x the multiply-adds of the plan's convolutions and matrix products, from the graph's types."""
    from dlc.passes import run_pipeline
    graph = run_pipeline(program.model.inference_graph({"N": n}), program.model.pass_context(False))
    total = 0.0
    for node in graph.nodes:
        if node.op in ("conv2d_core", "conv2d_nchwc"):
            w, y = graph.values[node.inputs[1]], graph.values[node.outputs[0]]
            pixels = int(np.prod([int(d) for d in y.shape[:1] + y.shape[2:4]]))
            total += 2.0 * pixels * int(np.prod([int(d) for d in w.shape]))
        elif node.op == "matmul":
            a, c = graph.values[node.inputs[0]], graph.values[node.outputs[0]]
            total += 2.0 * int(np.prod([int(d) for d in c.shape])) * int(a.shape[-1])
    return total


def programs(name: str, n: int, tmp: Path) -> tuple[dict[str, Any], Path]:
    path, _, _ = MODELS[name]
    out = {}
    for layout in ("auto", "nchw"):
        p = from_onnx(ROOT / path) if path.endswith(".onnx") else dlc.compile(ROOT / path, dims={"N": n})
        if layout == "nchw":
            p.model.nchwc_block = 0
        out[layout] = p
    onnx_path = ROOT / path if path.endswith(".onnx") else tmp / f"{name}.onnx"
    if not path.endswith(".onnx"):
        out["auto"].to_onnx(str(onnx_path))
    return out, onnx_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=20)
    args = ap.parse_args()
    import onnxruntime as ort
    print(f"host: {cpu_name()}; nchwc block {_core.nchwc_block_size()} ({_core.nchwc_isa()})")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            dlc.set_num_threads(threads)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            peak = gemm_peak_gflops() if threads == 2 else None
            for name, (_, shape, ref_batch) in MODELS.items():
                for n in (ref_batch, 1):
                    progs, onnx_path = programs(name, n, Path(tmp))
                    x = np.random.default_rng(n).standard_normal((n, *shape)).astype(np.float32)
                    session = ort.InferenceSession(str(onnx_path), opts)
                    feed = {session.get_inputs()[0].name: x}
                    key = next(iter(progs["auto"].inputs))
                    blocked = sum(1 for s in progs["auto"].model.inference_plan({"N": n}, False).steps
                                  if s.kernel == "conv2d_nchwc")
                    calls = {"auto": lambda: progs["auto"](**{key: x}), "nchw": lambda: progs["nchw"](**{key: x}),
                             "ort": lambda: session.run(None, feed)}
                    r = medians(calls, args.rounds, args.block)
                    line = (f"{name:9s} N={n:<3d} threads={threads}: auto {r['auto']:.3f} ms ({blocked} blocked convs), "
                            f"nchw {r['nchw']:.3f} ms, ORT {r['ort']:.3f} ms; auto/nchw {r['auto'] / r['nchw']:.2f}, "
                            f"auto/ORT {r['auto'] / r['ort']:.2f}")
                    if peak and name == "resnet8":
                        gflops = plan_flops(progs["auto"], n) / (r["auto"] * 1e-3) / 1e9
                        line += f"; {gflops:.1f} GFLOP/s = {gflops / peak:.0%} of the 2-thread GEMM peak {peak:.0f}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
