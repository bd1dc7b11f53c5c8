"""Inference latency of ONNX's nine light model-zoo networks (ResNet-50, DenseNet-121, Inception v1/v2,
ShuffleNet, SqueezeNet, VGG-19, AlexNet, ZFNet-512) imported into dlc, against ONNX Runtime and OpenVINO on
the same file, f32, batch 1, 224x224, in one process. The engines run in alternating blocks with a pause
between blocks (so a slow phase of a shared machine hits all of them), each with the same thread count; the
median per engine is reported with the ratio dlc / other (below 1: dlc is faster).

    pip install onnx onnxruntime openvino
    python benchmarks/onnx_speed.py [--threads 2] [--blocks 5] [--iters 5] [--model resnet50]

With --hf, Hugging Face BERT, DistilBERT, GPT-2 and ViT instead, built from small random-weight configs
(tests/onnx_fixtures/models.py; hidden 128, 2 layers, 4 heads, FFN 512, 128 tokens or a 64x64 image),
exported by torch.onnx.export at opset 17 with dynamic batch and sequence axes: nodes, import time (import
and compile), the largest relative error against ONNX Runtime, and dlc / ORT at batch 1 and 8 (pip install
'dlc[bench]' for torch and transformers).
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
    parser.add_argument("--hf", action="store_true", help="the Hugging Face models instead (needs torch)")
    args = parser.parse_args(argv)
    if args.hf:
        return hugging_face(args)
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


def hugging_face(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import onnx
    import onnxruntime as ort
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "onnx_fixtures"))
    import models
    models.HF_SIZE.update(hidden=128, layers=2, heads=4, ffn=512, seq=128, image=64)
    dlc.set_num_threads(args.threads)
    print(f"{'model':<11} {'nodes':>6} {'import s':>9} {'max rel err':>12} {'dlc/ORT b1':>11} {'dlc/ORT b8':>11}")
    for name in ("hf_bert", "hf_distilbert", "hf_gpt2", "hf_vit"):
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / f"{name}.onnx")
            models.export(name, path)
            nodes = len(onnx.load(path).graph.node)
            start = time.perf_counter()
            program = from_onnx(path)  # N and T symbolic (GPT-2's causal mask too)
            import_s = time.perf_counter() - start
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        (dlc_in,) = program.inputs
        ort_in = session.get_inputs()[0].name
        rng = np.random.default_rng(0)
        errors, ratios = [], []
        for batch in (1, 8):
            x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32) if name == "hf_vit" else \
                rng.integers(0, 100, (batch, models.HF_SIZE["seq"])).astype(np.int64)
            ref = session.run(None, {ort_in: x})[0]
            got = next(iter(program(**{dlc_in: x}).values()))
            errors.append(float(np.max(np.abs(got - ref)) / np.max(np.abs(ref))))
            ms = measure({"dlc": lambda v: program(**{dlc_in: v}),
                          "onnxruntime": lambda v: session.run(None, {ort_in: v})}, x, args.blocks, args.iters,
                         args.pause)
            ratios.append(ms["dlc"] / ms["onnxruntime"])
        print(f"{name.removeprefix('hf_'):<11} {nodes:>6} {import_s:>9.2f} {max(errors):>12.1e} {ratios[0]:>11.2f} "
              f"{ratios[1]:>11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
