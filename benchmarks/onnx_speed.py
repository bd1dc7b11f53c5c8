"""Inference latency of ONNX's nine light model-zoo networks (ResNet-50, DenseNet-121, Inception v1/v2,
ShuffleNet, SqueezeNet, VGG-19, AlexNet, ZFNet-512) imported into dlc, against ONNX Runtime and OpenVINO on
the same file, f32, batch 1, 224x224, in one process. The engines run in alternating blocks with a pause
between blocks (so a slow phase of a shared machine hits all of them), each with the same thread count; the
median per engine is reported with the ratio dlc / other (below 1: dlc is faster).

    pip install onnx onnxruntime openvino
    python benchmarks/onnx_speed.py [--threads 2] [--blocks 5] [--iters 5] [--model resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import numpy as np

import dlc
from dlc.onnx import from_onnx
from dlc.onnx.conformance import data_folder


def engines(path: str, threads: int) -> dict[str, Callable[[np.ndarray], object]]:
    out: dict[str, Callable[[np.ndarray], object]] = {}
    dlc.set_num_threads(threads)
    program = from_onnx(path)
    (dlc_in,) = program.inputs
    out["dlc"] = lambda x: program(**{dlc_in: x})
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    ort_in = session.get_inputs()[0].name
    out["onnxruntime"] = lambda x: session.run(None, {ort_in: x})
    try:
        import openvino as ov
    except ImportError:
        return out
    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                                   "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    out["openvino"] = lambda x: request.infer({0: x})
    return out


def measure(runs: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, blocks: int, iters: int,
            pause: float) -> dict[str, float]:
    for fn in runs.values():  # warm-up: plans compiled, caches filled
        fn(x)
        fn(x)
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for b in range(blocks):
        order = names[b % len(names):] + names[:b % len(names)]  # rotate who goes first
        for name in order:
            for _ in range(iters):
                start = time.perf_counter()
                runs[name](x)
                times[name].append(time.perf_counter() - start)
            time.sleep(pause)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--model", action="append", help="light model name(s), e.g. resnet50")
    args = parser.parse_args(argv)
    folder = data_folder() / "light"
    paths = sorted(folder.glob("light_*.onnx"))
    if args.model:
        paths = [p for p in paths if p.stem.removeprefix("light_") in args.model]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    print(f"{'model':<14} {'dlc ms':>8} {'ORT ms':>8} {'OV ms':>8} {'dlc/ORT':>8} {'dlc/OV':>8}")
    for path in paths:
        runs = engines(str(path), args.threads)
        ms = measure(runs, x, args.blocks, args.iters, args.pause)
        ov = ms.get("openvino", float("nan"))
        print(f"{path.stem.removeprefix('light_'):<14} {ms['dlc']:8.2f} {ms['onnxruntime']:8.2f} {ov:8.2f} "
              f"{ms['dlc'] / ms['onnxruntime']:8.2f} {ms['dlc'] / ov:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
