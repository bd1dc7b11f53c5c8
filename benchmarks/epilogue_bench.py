"""What a fused epilogue costs: each fused matmul group of a model's plan against the plain GEMM of the same
shape, and each convolution with its elementwise tail against the plain convolution; then the whole training
step fused against unfused (`dlc bench`).

A group is cut out of the compiled plan into a plan of its own: the steps keep their kernels, programs and
the arena offsets of what they write (so in-place aliasing stays as planned), and everything they only read
becomes an input filled with standard-normal values. The "plain" plan is the group's first step with the
epilogue program removed (a matmul) or alone (a convolution). A fused matmul step is also timed with each
epilogue form forced (`_core.gemm_epilogue_force_form`): "tile" (on each register tile in L1), "block" (the
prepared program on finished MC x 256 blocks) and "general" (the general evaluator on those blocks: the only
form before the tile epilogue); "auto" is what runs by default. Times are the C++ executor's per-step times
(`Plan.run(profile=True)`), summed over the group's steps. Contenders run in blocks of consecutive calls,
the blocks alternate over several rounds with a pause between them, and the figure is the median over all
calls: on a shared machine a ratio measured side by side is what holds.

    python benchmarks/epilogue_bench.py [--model models/gelu_mlp.dlm -D N=256] [--train] [--rounds 7]
                                        [--block 20] [--threads 2] [--isa avx512|avx2|scalar] [--no-step]
                                        [--threads 1 --cpu-time]
Without --model it runs gelu_mlp (N=256, training step) and resnet8 (N=64, inference).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import dlc
from dlc import _core
from dlc.bench import run_bench
from dlc.ir import np_dtype
from dlc.lowering import ARENA, INPUT, LoweredPlan

DTYPES = {0: np.float32, 1: np.float64, 2: np.int32, 3: np.int64, 4: np.bool_}
PAUSE_S = 0.2
FORMS = ("tile", "block", "general")  # gemm_epilogue_force_form


@dataclass
class Group:
    label: str
    fused: Any  # _core.Plan
    plain: Any
    fused_inputs: list[np.ndarray]
    plain_inputs: list[np.ndarray]


def _dtype_of(code: int) -> Any:
    from dlc.ir import DTYPE_CODES
    name = {v: k for k, v in DTYPE_CODES.items()}[code]
    return np_dtype(name)


def _sub_plan(lowered: LoweredPlan, steps: list[tuple[str, str, list[int], list[int], list[int], list[float]]],
              rng: np.random.Generator) -> tuple[Any, list[np.ndarray]]:
    """A plan of just these steps: slots they write keep their arena offsets, slots they only read are inputs."""
    recipe = lowered.recipe
    written = {s for step in steps for s in step[3]}
    mapping: dict[int, int] = {}
    plan = _core.Plan(recipe.arena_bytes)
    inputs: list[np.ndarray] = []
    new_slots: list[tuple[int, int, int, list[int]]] = []

    def slot(s: int) -> int:
        if s not in mapping:
            region, where, dtype, shape = recipe.slots[s]
            if s in written and region == ARENA:
                new_slots.append((ARENA, where, dtype, shape))
            else:
                arr = rng.standard_normal(shape).astype(_dtype_of(dtype))
                new_slots.append((INPUT, len(inputs), dtype, shape))
                inputs.append(arr)
            mapping[s] = len(new_slots) - 1
        return mapping[s]

    remapped = [(k, label, [slot(s) for s in ins], [slot(s) for s in outs], ints, floats)
                for k, label, ins, outs, ints, floats in steps]
    for region, where, dtype, shape in new_slots:
        plan.add_slot(region, where, dtype, shape)
    for key, label, ins, outs, ints, floats in remapped:
        plan.add_step(key, label, ins, outs, list(ints), list(floats), -1)
    plan.set_num_inputs(len(inputs))
    plan.set_outputs([])
    return plan, inputs


def find_groups(lowered: LoweredPlan, seed: int = 0) -> list[Group]:
    """Fused matmul steps (with an epilogue program) and convolutions with their epilogue."""
    rng = np.random.default_rng(seed)
    steps = lowered.recipe.steps
    groups: list[Group] = []
    for i, step in enumerate(steps):
        key, label, ins, outs, ints, floats = step
        if key == "matmul" and ints[2] > 0:
            plain = (key, label, ins[:2], outs[:1], [ints[0], ints[1], 0], [])
        elif key == "conv2d" and len(ints) > 7:
            plain = (key, label, ins[:2], outs[:1], list(ints[:7]), [])
        elif key == "conv2d" and i + 1 < len(steps) and steps[i + 1][0] == "ew" and outs[0] in steps[i + 1][2]:
            # Convolution and the elementwise kernel after it (no conv epilogue yet): time them together.
            fused, fi = _sub_plan(lowered, [step, steps[i + 1]], rng)
            pl, pi = _sub_plan(lowered, [step], rng)
            groups.append(Group(f"{label} -> {steps[i + 1][1]} (two steps)", fused, pl, fi, pi))
            continue
        else:
            continue
        fused, fi = _sub_plan(lowered, [step], rng)
        pl, pi = _sub_plan(lowered, [plain], rng)
        groups.append(Group(label, fused, pl, fi, pi))
    return groups


def time_blocks(calls: dict[str, Any], rounds: int, block: int) -> dict[str, float]:
    """Median seconds per call: each contender runs `block` consecutive calls per round, after a pause."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(PAUSE_S)
            call()  # untimed: wakes the threads, warms the caches
            for _ in range(block):
                times[name].append(call())
    return {k: statistics.median(v) for k, v in times.items()}


def group_times(lowered: LoweredPlan, rounds: int, block: int, cpu_time: bool) -> list[tuple[str, dict[str, float]]]:
    """Per group: seconds of the fused step (tile epilogue), of the same step with the epilogue forced through
    the general evaluator on finished blocks (the form before the tile epilogue), and of the plain step."""
    out = []
    for g in find_groups(lowered):
        def run(plan: Any, inputs: list[np.ndarray], form: str = "") -> float:
            _core.gemm_epilogue_force_form(form)
            try:
                if cpu_time:  # one thread runs the plan on this one: count only the time it was on a core
                    t0 = time.thread_time()
                    plan.run(inputs, [])
                    return time.thread_time() - t0
                return sum(seconds for _, seconds in plan.run(inputs, [], profile=True))
            finally:
                _core.gemm_epilogue_force_form("")
        calls = {"fused": lambda g=g: run(g.fused, g.fused_inputs),
                 "plain": lambda g=g: run(g.plain, g.plain_inputs)}
        if "two steps" not in g.label:
            for form in FORMS:
                calls[form] = lambda g=g, form=form: run(g.fused, g.fused_inputs, form)
        out.append((g.label, time_blocks(calls, rounds, block)))
    return out


def report(model: str, dims: dict[str, int], train: bool, rounds: int, block: int, step: bool, cpu_time: bool) -> None:
    program = dlc.compile(model, dims=dims)
    lowered = program.training_plan("step", dims)[0] if train else program.compile_plan(dims, training=False)
    mode = "training step" if train else "inference"
    print(f"{model} {mode} dims={dims} threads={dlc.get_num_threads()} gemm={_core.gemm_kernel_name()}")
    print(f"  {'plain ms':>9} {'fused ms':>9}  fused / plain: {'auto':>6} " + " ".join(f"{f:>7}" for f in FORMS)
          + "  group")
    for label, t in group_times(lowered, rounds, block, cpu_time):
        forms = " ".join(f"{t[f] / t['plain']:7.3f}" if f in t else f"{'-':>7}" for f in FORMS)
        print(f"  {1e3 * t['plain']:9.3f} {1e3 * t['fused']:9.3f}  {'':14} {t['fused'] / t['plain']:6.3f} {forms}  {label}")
    if step:
        r = run_bench(model, dims, train=train, repeat=rounds * block, warmup=5)
        print(f"  whole {mode}: fused {r['fused_ms']:.3f} ms, unfused {r['unfused_ms']:.3f} ms, "
              f"unfused/fused {r['speedup']:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("-D", action="append", default=[], metavar="NAME=SIZE")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--isa", default="", help="force a GEMM path (avx512, avx2, scalar)")
    ap.add_argument("--no-step", action="store_true", help="skip the whole-step fused/unfused comparison")
    ap.add_argument("--cpu-time", action="store_true",
                    help="with --threads 1: time groups by this thread's CPU time (steadier on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        dlc.set_num_threads(args.threads)
    _core.gemm_force_isa(args.isa)
    if args.model:
        dims = {k: int(v) for k, v in (d.split("=") for d in args.D)}
        runs = [(args.model, dims, args.train)]
    else:
        runs = [("models/gelu_mlp.dlm", {"N": 256}, True), ("models/resnet8.dlm", {"N": 64}, False)]
    for model, dims, train in runs:
        report(model, dims, train, args.rounds, args.block, not args.no_step, args.cpu_time)


if __name__ == "__main__":
    main()
