"""`dlc bench`: times one model fused and unfused, for inference or for a whole training step.

Both variants are compiled from the same file with the same seed, so they hold the same parameters and see the
same random batch. Each is run `warmup` times, then `repeat` times; the figure is the median wall time of the
call a user makes (`program(**inputs)` or `program.train_step(**batch)`). Each of those repeats is followed by a
profiled run of the same plan, in the same alternating loop: the per-kernel table holds each step's median over
these runs, next to the median total of the same runs, so the table and the totals describe the same moments of
a noisy machine (one profiled run alone could differ 100x from the median under load). The plan's C++
executor times every step, and the lowered plan knows each step's label and the bytes its tensors occupy (read
and written once: a lower bound on memory traffic).

Entry points: `run_bench(...) -> dict` (JSON-ready) and `format_bench(result) -> str`; the `dlc bench`
command (cli/bench.py) calls them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .errors import DlcError
from .ir import Graph, np_dtype
from . import _core
from .lowering import LoweredPlan
from .profiler import Profile
from .program import Program

LABEL_OPS = ("softmax_xent", "softmax_xent_grad")  # ops whose operand 1 is a class index below logits' width


def random_batch(program: Program, graph: Graph, rng: np.random.Generator,
                 binding: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Random values for the program's inputs, of the right dtypes and shapes. Integer inputs that `graph` (a
    training graph, which has the loss) uses as class labels fall in [0, classes)."""
    label_of = {v: name for name, v in graph.inputs}
    classes: dict[str, int] = {}
    for node in graph.nodes:
        if node.op in LABEL_OPS and node.inputs[1] in label_of:
            classes[label_of[node.inputs[1]]] = int(graph.values[node.inputs[0]].shape[-1])
    out: dict[str, np.ndarray] = {}
    for name, v in program.graph.inputs:
        t = program.graph.values[v]
        shape = tuple(int(binding[str(d)]) if not isinstance(d, int) else d for d in t.shape)
        if t.dtype in ("f32", "f64"):
            out[name] = rng.standard_normal(shape).astype(np_dtype(t.dtype))
        elif t.dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        else:
            out[name] = rng.integers(0, classes.get(name, 2), shape).astype(np_dtype(t.dtype))
    return out


def label_graph(program: Program, dims: Mapping[str, int]) -> Graph:
    """The graph that says which inputs are class labels: the loss plan's, or the model's if it has no loss."""
    try:
        return program.training_plan("loss", dims)[1].graph
    except DlcError:
        return program.graph


class _Profiler:
    """Profiled runs of one lowered plan: per-step seconds and the wall time of each whole run."""

    def __init__(self, program: Program, lowered: LoweredPlan, arrays: Mapping[str, np.ndarray], train: bool,
                 trace: Profile | None = None, name: str = ""):
        self.program, self.lowered, self.train, self.trace, self.name = program, lowered, train, trace, name
        self.pid = 1 + len({e["pid"] for e in trace.events}) if trace is not None else 0
        if trace is not None:
            trace.name_track(self.pid, 1, f"dlc bench: {name}", f"{name} plan")
        self.ins = [np.ascontiguousarray(arrays[n]) for n in lowered.input_names]
        self.outs = [np.empty(tuple(int(d) for d in t.shape), dtype=np_dtype(t.dtype)) for t in lowered.output_types]
        self.per_step: list[list[float]] = [[] for _ in lowered.steps]
        self.threads: list[int] = [1 for _ in lowered.steps]  # each step's team: fixed by its work
        self.totals: list[float] = []

    def run(self, record: bool = True) -> None:
        t0 = time.perf_counter()
        times = self.lowered.plan.run(self.ins, self.outs, seed=self.program.seed,
                                      step=max(1, self.program.step_count), training=self.train, profile=True)
        t1 = time.perf_counter()
        if record:
            self.totals.append(t1 - t0)
            for k, (_, t) in enumerate(times):
                self.per_step[k].append(t)
            if self.trace is not None:
                self.trace.record(self.lowered, t0 * 1e6, t1 * 1e6, times, f"{self.name} run {len(self.totals)}",
                                  int(_core.get_num_threads()), pid=self.pid, tid=1, variant=self.name)
            self.threads = list(self.lowered.plan.step_threads)

    def rows(self) -> list[dict[str, Any]]:
        """Per-step medians as table rows sorted by time; share is of the sum of the step medians."""
        medians = [statistics.median(ts) for ts in self.per_step]
        total = sum(medians) or 1.0
        packed = self.lowered.plan.packed_step_bytes  # weights packed ahead (when the plan was built)
        rows = [{"label": s.label, "kernel": s.kernel, "ms": 1e3 * t, "share": t / total, "bytes": s.bytes_moved,
                 "gb_per_s": s.bytes_moved / t / 1e9 if t > 0 else 0.0, "threads": n, "packed_bytes": int(p)}
                for s, t, n, p in zip(self.lowered.steps, medians, self.threads, packed)]
        return sorted(rows, key=lambda r: -r["ms"])


def _interleaved(calls: list[Callable[[], Any]], profilers: list[_Profiler | None], repeat: int,
                 warmup: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Median milliseconds of each call, timed in turns (A B A B ...) so that both see the same machine: on a
    shared, noisy machine a ratio of medians taken side by side is what holds. Each timed call is followed by
    a profiled run of its plan (where it has a profiler). `clock`: wall time by default (time.thread_time
    counts only the CPU time of the calling thread)."""
    for _ in range(warmup):
        for call, prof in zip(calls, profilers):
            call()
            if prof is not None:
                prof.run(record=False)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for k, (call, prof) in enumerate(zip(calls, profilers)):
            t0 = clock()
            call()
            times[k].append(clock() - t0)
            if prof is not None:
                prof.run()
    return [1e3 * statistics.median(ts) for ts in times]


def guard_turns(variant: _Variant, repeat: int, warmup: int,
                clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Median milliseconds of train_step (a `_prepare`d training variant) and of the same step plan without
    the non-finite guard, in turns of their own, unprofiled: A B A B ..., then B A B A ... (the call that
    comes first in a turn gets caches the other left, a bias of a few percent either way), averaged."""
    guarded, plain = variant.call, _one_plan_step(variant)
    first = _interleaved([guarded, plain], [None, None], repeat, warmup, clock)
    second = _interleaved([plain, guarded], [None, None], repeat, warmup, clock)
    return (first[0] + second[1]) / 2, (first[1] + second[0]) / 2


def _one_plan_step(variant: _Variant, **options: Any) -> Callable[[], Any]:
    """What train_step would cost without the non-finite guard: the same input checks and learning rate, then
    the same fused "step" plan built without its guard (an update that neither reads the loss nor checks the
    gradients, and no flag for Python to read). `options` go to training_plan (mode="train" gives a second,
    identical plan with memory of its own: benchmarks/guard_cost.py's noise floor)."""
    from .training.step import HYPER
    trainer, model = variant.program.trainer, variant.program.model
    batch = {n: a for n, a in variant.arrays.items() if n != HYPER}
    lowered = trainer.training_plan("step", model.dims, guard=False, **options)[0]

    def step() -> None:
        arrays, _ = trainer._prepare(batch)
        _, hyper = trainer._hyper(trainer.spec(), 1.0)
        model.run_plan(lowered, {**arrays, HYPER: hyper}, step=trainer.step_count + 1, training=True)
    return step


@dataclass
class _Variant:
    program: Program
    lowered: LoweredPlan
    compile_s: float
    call: Callable[[], Any]
    arrays: dict[str, np.ndarray]  # what the plan itself takes, for the profiled runs


def _prepare(model: str, dims: dict[str, int], train: bool, fuse: bool, seed: int,
             precision: str = "f32") -> _Variant:
    import dlc
    from .training.step import HYPER
    t0 = time.perf_counter()
    program = dlc.compile(model, dims=dims, fuse=fuse, seed=seed, precision=precision)
    lowered = program.training_plan("step", dims)[0] if train else program.compile_plan(dims, training=False)
    compile_s = time.perf_counter() - t0
    batch = random_batch(program, label_graph(program, dims), np.random.default_rng(seed), dims)
    if train:
        hyper = np.array([1e-3, 1.0, 1.0, 0.0])  # lr, step, gradient scale: what train_step passes
        return _Variant(program, lowered, compile_s, lambda: program.train_step(**batch), {**batch, HYPER: hyper})
    inputs = {n: batch[n] for n in lowered.input_names}
    return _Variant(program, lowered, compile_s, lambda: program(**inputs), inputs)


def run_bench(model_path: str, dims: Mapping[str, int], train: bool = False, threads: int | None = None,
              repeat: int = 30, warmup: int = 5, seed: int = 0, trace: Profile | None = None,
              precision: str = "f32") -> dict[str, Any]:
    """Times `model_path` fused and unfused. dims must bind every symbolic dimension. With `trace`, every
    profiled run of both plans is recorded there, kernel by kernel (`dlc bench --trace run.json`). `precision`:
    of the inference plans (docs/precision.md; training is f32)."""
    import dlc
    if threads is not None:
        dlc.set_num_threads(threads)
    d = {k: int(v) for k, v in dims.items()}
    variants = {"fused": _prepare(model_path, d, train, True, seed, precision),
                "unfused": _prepare(model_path, d, train, False, seed, precision)}
    profilers: list[_Profiler | None] = [_Profiler(v.program, v.lowered, v.arrays, train, trace, name)
                                         for name, v in variants.items()]
    times = dict(zip(variants, _interleaved([v.call for v in variants.values()], profilers, repeat, warmup)))
    guard: dict[str, float] = {}
    if train:
        # Not in the turns above: there the other program's profiled run evicts the caches of whichever call
        # comes next, a bias of up to +-15 % on small steps where the guard's cost is a few percent.
        guarded_ms, plain_ms = guard_turns(variants["fused"], repeat, warmup)
        guard = {"guarded_ms": guarded_ms, "one_plan_ms": plain_ms, "guard_cost": guarded_ms / plain_ms - 1.0}
    detail = {name: {"ms": times[name], "compile_s": v.compile_s, "memory": v.lowered.memory_report(),
                     "steps": len(v.lowered.steps), "kernels": prof.rows(),
                     "profiled_ms": 1e3 * statistics.median(prof.totals),
                     "kernel_sum_ms": sum(r["ms"] for r in prof.rows())}
              for (name, v), prof in zip(variants.items(), profilers)}
    return {
        "model": str(model_path), "dims": d, "mode": "train_step" if train else "inference",
        "threads": dlc.get_num_threads(), "repeat": repeat, "warmup": warmup,
        "fused_ms": times["fused"], "unfused_ms": times["unfused"], "speedup": times["unfused"] / times["fused"],
        **guard,
        "fused_arena_bytes": detail["fused"]["memory"]["arena_bytes"],
        "unfused_arena_bytes": detail["unfused"]["memory"]["arena_bytes"],
        **detail,
    }


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _memory_line(mem: Mapping[str, int]) -> str:
    line = (f"arena {_mib(mem['arena_bytes'])}, lower bound {_mib(mem['lower_bound_bytes'])} "
            f"(x{mem['arena_bytes'] / max(1, mem['lower_bound_bytes']):.3f}), naive {_mib(mem['naive_bytes'])} "
            f"(x{mem['arena_bytes'] / max(1, mem['naive_bytes']):.3f})")
    if mem.get("gradient_bytes"):
        line += f", gradient region {_mib(mem['gradient_bytes'])}"
    if mem.get("packed_weights_bytes"):
        line += f", packed weights {_mib(mem['packed_weights_bytes'])}"
    return line


def format_bench(result: Mapping[str, Any], top: int = 12) -> str:
    lines = [f"{result['model']} {result['mode']} dims={result['dims']} threads={result['threads']} "
             f"(median of {result['repeat']} after {result['warmup']} warm-ups)"]
    for name in ("fused", "unfused"):
        v = result[name]
        lines.append(f"  {name:8s} {v['ms']:8.3f} ms  {v['steps']:3d} kernels  compile {1e3 * v['compile_s']:.0f} ms  "
                     f"{_memory_line(v['memory'])}")
    lines.append(f"  speedup  {result['speedup']:.2f}x")
    if "one_plan_ms" in result:
        lines.append(f"  one plan {result['one_plan_ms']:8.3f} ms  the fused step plan without the non-finite guard, "
                     f"in turns with train_step ({result['guarded_ms']:.3f} ms): the guard costs "
                     f"{100 * result['guard_cost']:+.1f}%")
    for name in ("fused", "unfused"):
        lines.append(f"  {name} kernels (medians of the {result['repeat']} profiled runs: total "
                     f"{result[name]['profiled_ms']:.3f} ms, kernels {result[name]['kernel_sum_ms']:.3f} ms):")
        lines.append(f"    {'ms':>8} {'share':>6} {'MB':>8} {'GB/s':>6} {'thr':>3} {'pack':>4}  kernel / nodes")
        rows = result[name]["kernels"]
        for r in rows[:top]:
            lines.append(f"    {r['ms']:8.3f} {100 * r['share']:5.1f}% {r['bytes'] / 1e6:8.2f} {r['gb_per_s']:6.1f} "
                         f"{r['threads']:>3} {'yes' if r['packed_bytes'] else '-':>4}  {r['kernel']}: {r['label']}")
        if len(rows) > top:
            rest = rows[top:]
            lines.append(f"    {sum(r['ms'] for r in rest):8.3f} {100 * sum(r['share'] for r in rest):5.1f}%"
                         f"           ({len(rest)} more)")
    return "\n".join(lines)
