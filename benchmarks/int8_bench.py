"""int8 inference, dlc against ONNX Runtime's int8, side by side in one process (issue 23).

For each workload (benchmarks/workloads.md) the f32 model is exported to ONNX (dlc.onnx.to_onnx) and quantized by
ONNX Runtime as its users do: `quantize_static` (QDQ, per-channel int8 weights, uint8 activations, MinMax
calibration) for the convolutional models, `quantize_dynamic` (per-channel int8 weights) for the dense and
recurrent ones. dlc runs the same weights with precision="int8": calibrated on the same samples where ORT is
static, dynamic where ORT is. Both at the reference batch and at batch 1, the same thread count, alternating
blocks with pauses (benchmarks/onnx_speed.py's `measure`); medians in ms and dlc / ORT (below 1: dlc faster),
plus each engine's int8 error against dlc's f32 output (max |diff| / max |f32|).

    pip install onnx onnxruntime
    python benchmarks/int8_bench.py [--threads 2] [--blocks 5] [--iters 10] [--model lenet] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import dlc
from dlc.onnx import to_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_speed import measure  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"
# workload -> (reference batch, ORT quantization)
WORKLOADS = {"mlp": (64, "dynamic"), "gelu_mlp": (256, "dynamic"), "lenet": (64, "static"),
             "resnet8": (32, "static"), "transformer": (8, "dynamic"), "lstm": (32, "dynamic")}
CALIBRATION = 64


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def sample(program: dlc.Program, n: int, rng: np.random.Generator) -> np.ndarray:
    (name,) = program.model.used_inputs()
    shape = [n if isinstance(d, str) else d for d in program.inputs[name].shape]
    return rng.standard_normal(shape).astype(np.float32)


def ort_int8(f32_path: str, out_path: str, mode: str, calibration: np.ndarray, input_name: str) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    if mode == "dynamic":
        quantize_dynamic(f32_path, out_path, weight_type=QuantType.QInt8, per_channel=True)
        return

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter([{input_name: calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    quantize_static(f32_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def bench(model: str, threads: int, blocks: int, iters: int, folder: Path) -> list[dict[str, object]]:
    import onnxruntime as ort
    batch, mode = WORKLOADS[model]
    rng = np.random.default_rng(0)
    f32 = dlc.compile(MODELS / f"{model}.dlm")
    (name,) = f32.model.used_inputs()
    calibration = sample(f32, CALIBRATION, rng)
    f32_path, q_path = str(folder / f"{model}.onnx"), str(folder / f"{model}.int8.onnx")
    to_onnx(f32, f32_path)
    ort_int8(f32_path, q_path, mode, calibration, name)
    int8 = dlc.compile(MODELS / f"{model}.dlm", precision="int8",
                       calibration={name: calibration} if mode == "static" else None)
    dlc.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(q_path, opts, providers=["CPUExecutionProvider"])
    ort_in = session.get_inputs()[0].name
    rows = []
    for n in (batch, 1):
        x = sample(f32, n, rng)
        ref = next(iter(f32(**{name: x}).values()))
        mine = next(iter(int8(**{name: x}).values()))
        theirs = session.run(None, {ort_in: x})[0]
        span = float(np.abs(ref).max()) or 1.0
        times = measure({"dlc_int8": lambda v: int8(**{name: v}), "ort_int8": lambda v: session.run(None, {ort_in: v}),
                         "dlc_f32": lambda v: f32(**{name: v})}, x, blocks, iters, 0.1)
        rows.append({"model": model, "batch": n, "ort": mode, **{k: round(v, 4) for k, v in times.items()},
                     "dlc/ort": round(times["dlc_int8"] / times["ort_int8"], 3),
                     "dlc_err": round(float(np.abs(mine - ref).max()) / span, 5),
                     "ort_err": round(float(np.abs(theirs - ref).max()) / span, 5)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--model", action="append", choices=list(WORKLOADS))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    print(f"host CPU: {cpu_name()}; {args.threads} threads; int8 path {dlc._core.qgemm_kernel_name()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or list(WORKLOADS):
            rows += bench(model, args.threads, args.blocks, args.iters, Path(tmp))
    print(f"\n| model | batch | ORT | dlc int8 ms | ORT int8 ms | dlc / ORT | dlc f32 ms | dlc err | ORT err |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['ort']} | {r['dlc_int8']:.3f} | {r['ort_int8']:.3f} | "
              f"**{r['dlc/ort']:.2f}** | {r['dlc_f32']:.3f} | {r['dlc_err']:.4f} | {r['ort_err']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
