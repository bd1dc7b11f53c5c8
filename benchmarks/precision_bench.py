"""Reduced precision, measured (docs/precision.md): dlc bf16 against OpenVINO in its default precision (bf16 on
a CPU with AVX512_BF16, f32 elsewhere), with dlc f32 and OpenVINO f32 beside them, on the reference workloads at
their reference batch and at batch 1, timed side by side in one process (peers.alternating_ms); then the
accuracy cost on trained models: digits_mlp and digits_cnn test accuracy and char_lstm's nats/char, f32 against
bf16 (dlc.quantize.precision_report), training any checkpoint missing from --checkpoints with `dlc train`.
Writes benchmarks/results/precision.{md,json}.

    python benchmarks/precision_bench.py [--threads 2] [--block 20] [--rounds 3] [--only mlp,lenet]
                                         [--checkpoints DIR] [--no-accuracy] [--no-speed]

Needs torch (the ONNX files OpenVINO reads are exported from benchmarks/torch_models.py) and openvino:
`pip install ".[bench]"`. OpenVINO's default is taken by giving no INFERENCE_PRECISION_HINT; the precision it
chose is read back from the compiled model and recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import dlc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import Call, _torch_data, alternating_ms, onnx_file  # noqa: E402
from torch_models import WORKLOADS  # noqa: E402

MODELS = HERE.parent / "models"
RESULTS = HERE / "results"
SPEED = ("mlp", "gelu_mlp", "transformer", "lstm", "lenet", "resnet8")
# (model, dataset, metric, limit of the drop): the accuracy targets.
ACCURACY = (("digits_mlp", "digits", "accuracy", 0.1), ("digits_cnn", "digits", "accuracy", 0.1),
            ("char_lstm", "pysource", "nll", 0.02))


def host() -> dict[str, Any]:
    flags = ""
    name = platform.processor()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = line
    except OSError:
        pass
    return {"cpu": name, "avx512_bf16": "avx512_bf16" in flags, "cores": os.cpu_count(),
            "load": os.getloadavg()[0]}


def dlc_call(name: str, batch: int, precision: str) -> Call:
    from dlc.bench import label_graph, random_batch
    program = dlc.compile(MODELS / f"{name}.dlm", dims={"N": batch}, precision=precision)
    data = random_batch(program, label_graph(program, {"N": batch}), np.random.default_rng(0), {"N": batch})
    inputs = {k: v for k, v in data.items() if k in program.model.used_inputs()}
    return lambda: program(**inputs)


def openvino_calls(name: str, batch: int, threads: int) -> tuple[dict[str, Call], str]:
    """OpenVINO in its default precision and in f32 on the workload's ONNX file, and the default's precision."""
    import openvino as ov
    w = WORKLOADS[name]
    feed = _torch_data(w, batch)[0].numpy()
    core = ov.Core()
    calls: dict[str, Call] = {}
    chosen = "?"
    with tempfile.TemporaryDirectory() as tmp:
        model = core.read_model(onnx_file(w, batch, tmp))
        for tag, hint in (("openvino_default", {}), ("openvino_f32", {"INFERENCE_PRECISION_HINT": "f32"})):
            compiled = core.compile_model(model, "CPU", {**hint, "INFERENCE_NUM_THREADS": threads,
                                                         "PERFORMANCE_HINT": "LATENCY"})
            if not hint:
                hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: bf16, f32, ...
                chosen = hint_type.get_type_name() if hasattr(hint_type, "get_type_name") else str(hint_type)
            request = compiled.create_infer_request()
            calls[tag] = (lambda r: lambda: r.infer({"x": feed}))(request)
    return calls, chosen


def speed(names: list[str], threads: int, block: int, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for batch in (WORKLOADS[name].batch, 1):
            calls = {"dlc_bf16": dlc_call(name, batch, "bf16"), "dlc_f32": dlc_call(name, batch, "f32")}
            ov_calls, chosen = openvino_calls(name, batch, threads)
            calls.update(ov_calls)
            dlc.set_num_threads(threads)
            ms = alternating_ms(calls, block=block, rounds=rounds)
            row = {"workload": name, "batch": batch, "openvino_default_precision": chosen,
                   **{f"{k}_ms": v for k, v in ms.items()},
                   "dlc_bf16_over_openvino_default": ms["dlc_bf16"] / ms["openvino_default"],
                   "dlc_bf16_over_dlc_f32": ms["dlc_bf16"] / ms["dlc_f32"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def checkpoint(model: str, dataset: str, directory: Path) -> Path:
    path = directory / f"{model}.ckpt"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "dlc", "train", str(MODELS / f"{model}.dlm"), "--data", dataset,
                        "--out", str(path)], check=True)
    return path


def accuracy(directory: Path) -> list[dict[str, Any]]:
    from dlc.cli.common import training_data
    from dlc.quantize import precision_report
    rows = []
    for model, dataset, metric, limit in ACCURACY:
        program = dlc.compile(MODELS / f"{model}.dlm")
        program.load_checkpoint(str(checkpoint(model, dataset, directory)))
        data = program.trainer.prepare_data(training_data(program, dataset, {})[1], "test data")
        inputs = {k: v for k, v in data.items() if k in program.model.used_inputs()}
        report = precision_report(program.model, "bf16", inputs, data["y"], metric=metric, batch_size=64)
        drop = report.drop(report.reduced_metric)
        row = {"model": model, "metric": metric, "samples": report.samples, "f32": report.f32_metric,
               "bf16": report.reduced_metric, "drop": drop, "limit": limit, "within": drop <= limit,
               "output_sqnr_db": next(iter(report.outputs.values()))[0],
               "layers": [(r.layer, r.sqnr_db) for r in report.layers]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(info: dict[str, Any], speed_rows: list[dict[str, Any]], acc_rows: list[dict[str, Any]]) -> str:
    lines = ["# Reduced precision: dlc bf16 against OpenVINO's default", "",
             f"Host: {info['cpu']}, {info['cores']} cores, AVX512_BF16 {'yes' if info['avx512_bf16'] else 'no'}, "
             f"load average {info['load']:.1f} at the start; {info['threads']} threads. Median ms per call, "
             f"all calls of a row timed side by side in one process (benchmarks/precision_bench.py).", ""]
    if speed_rows:
        lines += ["| workload | batch | dlc bf16 | dlc f32 | OpenVINO default | (its precision) | OpenVINO f32 | "
                  "dlc bf16 / OpenVINO default | dlc bf16 / dlc f32 |", "|---|---|---|---|---|---|---|---|---|"]
        for r in speed_rows:
            lines.append(f"| {r['workload']} | {r['batch']} | {r['dlc_bf16_ms']:.3f} | {r['dlc_f32_ms']:.3f} | "
                         f"{r['openvino_default_ms']:.3f} | {r['openvino_default_precision']} | "
                         f"{r['openvino_f32_ms']:.3f} | **{r['dlc_bf16_over_openvino_default']:.2f}** | "
                         f"{r['dlc_bf16_over_dlc_f32']:.2f} |")
        lines.append("")
    if acc_rows:
        lines += ["| model | metric | f32 | bf16 | drop | limit | output SQNR dB |", "|---|---|---|---|---|---|---|"]
        for r in acc_rows:
            lines.append(f"| {r['model']} | {r['metric']} | {r['f32']:.4f} | {r['bf16']:.4f} | {r['drop']:+.4f} | "
                         f"{r['limit']} | {r['output_sqnr_db']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="comma-separated workload names")
    parser.add_argument("--checkpoints", default=None, help="trained checkpoints (<model>.ckpt), trained if absent")
    parser.add_argument("--no-accuracy", dest="accuracy", action="store_false")
    parser.add_argument("--no-speed", dest="speed", action="store_false")
    args = parser.parse_args()
    info = {**host(), "threads": args.threads}
    print(json.dumps(info), flush=True)
    names = args.only.split(",") if args.only else list(SPEED)
    speed_rows = speed(names, args.threads, args.block, args.rounds) if args.speed else []
    acc_rows: list[dict[str, Any]] = []
    if args.accuracy:
        with tempfile.TemporaryDirectory() as tmp:
            acc_rows = accuracy(Path(args.checkpoints) if args.checkpoints else Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps({"host": info, "speed": speed_rows, "accuracy": acc_rows},
                                                       indent=2))
    (RESULTS / "precision.md").write_text(markdown(info, speed_rows, acc_rows))
    print(markdown(info, speed_rows, acc_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
