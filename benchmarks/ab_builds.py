"""A/B of two builds of dlc's C++ runtime in one process: the installed `dlc._core` ("new") against another
build of the same module ("base", e.g. main's sources from `git archive` configured with cmake into build/base,
where the module lands in kernels/), on the reference workloads'
inference at several batches and on single GEMMs. Plans for "base" are built by the base module (the Python
compiler is shared, so both builds must accept the same plans); both run in alternating blocks with a 0.2 s
pause between blocks (peers.alternating_ms), so load from other processes falls on both alike. Prints base
and new medians and new / base (below 1: the new build is faster).

    python benchmarks/ab_builds.py --base "build/base/kernels/_core*.so" [--threads 1,2] [--batches 1,4,64]
                                   [--only mlp,gelu_mlp] [--gemm]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import dlc
import dlc.lowering.plan as plan_builder
from dlc import _core

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import alternating_ms  # noqa: E402

MODELS = HERE.parent / "models"
WORKLOADS = ("mlp", "lenet", "resnet8", "lstm", "transformer", "gelu_mlp")
# (M, N, K, trans_b): batch-1 and small-batch dense layers, as stored and transposed.
GEMMS = ((1, 512, 784, False), (4, 512, 784, False), (4, 512, 784, True), (16, 1024, 256, False),
         (16, 1024, 256, True), (64, 512, 784, False), (64, 512, 784, True), (256, 1024, 256, False))


def load_base(pattern: str) -> ModuleType:
    paths = glob.glob(pattern)
    if len(paths) != 1:
        raise SystemExit(f"--base {pattern!r} matches {len(paths)} files, expected one")
    # The init function is PyInit__core, found from the last component of the module name.
    spec = importlib.util.spec_from_file_location("dlc_base._core", paths[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workload_calls(name: str, batch: int, base: ModuleType) -> dict[str, Any]:
    from dlc.bench import label_graph, random_batch
    calls = {}
    for tag, core in (("base", base), ("new", _core)):
        program = dlc.compile(str(MODELS / f"{name}.dlm"), dims={"N": batch})
        data = random_batch(program, label_graph(program, {"N": batch}), np.random.default_rng(0), {"N": batch})
        inputs = {k: v for k, v in data.items() if k in program.inputs}
        program.model.param_versions = core.ParamVersions(len(program.params))  # a table of the same build
        plan_builder._core = core  # the plan is built (on the first call) by this build's Plan
        try:
            program(**inputs)
        finally:
            plan_builder._core = _core
        calls[tag] = (lambda p, i: lambda: p(**i))(program, inputs)
    return calls


def gemm_calls(m: int, n: int, k: int, tb: bool, base: ModuleType) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return {"base": lambda: base.gemm_f32(a, b, False, tb), "new": lambda: _core.gemm_f32(a, b, False, tb)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="path (glob) of the baseline _core extension")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="1,4,64")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--gemm", action="store_true", help="also single GEMMs at small-M shapes")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = load_base(args.base)
    print(f"{'case':>28} {'thr':>3} {'base ms':>9} {'new ms':>9} {'new/base':>8}")
    for threads in (int(t) for t in args.threads.split(",")):
        base.set_num_threads(threads)
        dlc.set_num_threads(threads)
        cases: list[tuple[str, dict[str, Any]]] = []
        for name in args.only.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                cases.append((f"{name} N={batch}", workload_calls(name, batch, base)))
        if args.gemm:
            for m, n, k, tb in GEMMS:
                cases.append((f"gemm {m}x{n}x{k}{' tB' if tb else ''}", gemm_calls(m, n, k, tb, base)))
        for label, calls in cases:
            ms = alternating_ms(calls, block=args.block, rounds=args.rounds)
            print(f"{label:>28} {threads:>3} {ms['base']:>9.4f} {ms['new']:>9.4f} {ms['new'] / ms['base']:>8.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
