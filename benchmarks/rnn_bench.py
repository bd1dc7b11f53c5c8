"""The recurrent reference workload (models/lstm.dlm: LSTM 128 over x [N, 32, 64], last step, dense 10) side by
side in one process, alternating blocks (peers.alternating_ms): dlc inference with the plan keeping packed
weights ("new") and packing per call ("new_percall"), optionally another build of dlc's runtime ("base", e.g.
main's, as in ab_builds.py), ONNX Runtime and OpenVINO f32 on the model exported from PyTorch, PyTorch eager;
with --train, dlc's training step beside PyTorch's. Prints medians (ms) and dlc new / each (below 1: dlc new is faster).

    python benchmarks/rnn_bench.py [--base "build/base/kernels/_core*.so"] [--threads 1,2] [--batches 32,1]
                                   [--train] [--rounds 5] [--block 20]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

import dlc
import dlc.lowering.plan as plan_builder
from dlc import _core
from dlc.bench import label_graph, random_batch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ab_builds import load_base  # noqa: E402
from peers import alternating_ms, onnx_calls, torch_calls  # noqa: E402
from torch_models import WORKLOADS  # noqa: E402

MODEL = HERE.parent / "models" / "lstm.dlm"


def dlc_program(batch: int, core: ModuleType, packing: bool | None, train: bool) -> Callable[[], Any]:
    """One call of a fresh program whose plans the runtime `core` builds; packing True / False sets the
    inference plan's weight packing (None leaves the program's choice: on for inference plans)."""
    program = dlc.compile(str(MODEL), dims={"N": batch})
    data = random_batch(program, label_graph(program, {"N": batch}), np.random.default_rng(0), {"N": batch})
    inputs = {k: v for k, v in data.items() if k in program.inputs}
    program.model.param_versions = core.ParamVersions(len(program.params))  # a table of the same build
    plan_builder._core = core
    try:
        program.train_step(**data) if train else program(**inputs)
    finally:
        plan_builder._core = _core
    if train:
        return lambda: program.train_step(**data)
    if packing is not None:
        program.compile_plan({"N": batch}, training=False).plan.set_weight_packing(packing)
    return lambda: program(**inputs)


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                platform.processor())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="path (glob) of a baseline _core extension")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--train", action="store_true", help="training steps instead of inference")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = load_base(args.base) if args.base else None
    workload = WORKLOADS["lstm"]
    print(f"host CPU: {cpu_name()}; {'training step' if args.train else 'inference'}, medians in ms")
    for threads in (int(t) for t in args.threads.split(",")):
        dlc.set_num_threads(threads)
        if base is not None:
            base.set_num_threads(threads)
        for batch in (int(b) for b in args.batches.split(",")):
            calls: dict[str, Callable[[], Any]] = {"new": dlc_program(batch, _core, True, args.train)}
            if not args.train:
                calls["new_percall"] = dlc_program(batch, _core, False, False)
            if base is not None:
                calls["base"] = dlc_program(batch, base, None, args.train)
            if args.train:
                calls.update({k: v for k, v in torch_calls(workload, threads, batch).items() if k.endswith("train")})
            else:
                calls.update(onnx_calls(workload, threads, batch))
                calls.update({k: v for k, v in torch_calls(workload, threads, batch).items() if k.endswith("infer")})
            ms = alternating_ms(calls, block=args.block, rounds=args.rounds)
            cells = "  ".join(f"{k} {v:.3f} (new/{k} {ms['new'] / v:.2f})" for k, v in ms.items())
            print(f"threads {threads} batch {batch}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
