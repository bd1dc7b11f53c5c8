"""Traces of what ran, as Chrome trace-event JSON (the format torch.profiler and ONNX Runtime's profiler write;
open it in Perfetto, ui.perfetto.dev, or chrome://tracing).

Every plan run recorded becomes one event (an inference call, a training step, an evaluation batch) holding one
event per kernel step: the kernel, the fusion group it runs (its ops, `matmul+add+relu`, and the layer they come
from), its start and duration as the plan's C++ executor measured them, the bytes its tensors occupy and the
number of threads the kernels ran on. `dlc.profile(path)` records every plan run of every model while it is
active; `dlc bench --trace run.json` records the benchmark's profiled runs of the fused and unfused plans.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from . import _core
from .atomic_file import write_atomically
from .lowering import LoweredPlan

_active: list["Profile"] = []
_lock = threading.Lock()


def _now_us() -> float:
    return time.perf_counter() * 1e6


class Profile:
    """Trace events collected while active (see `dlc.profile`); `save(path)` writes them."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = None if path is None else Path(path)
        self.events: list[dict[str, Any]] = []
        self.threads = 0
        self._origin = _now_us()
        self._names: dict[tuple[int, int], str] = {}

    def __enter__(self) -> "Profile":
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _active.remove(self)
        if self.path is not None:
            self.save(self.path)

    def name_track(self, pid: int, tid: int, process: str, thread: str) -> None:
        """Names a track (Perfetto shows processes and threads as labelled rows)."""
        self._names[(pid, tid)] = thread
        self.events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": process}})
        self.events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": thread}})

    def record(self, lowered: LoweredPlan, started_us: float, ended_us: float, steps: Sequence[tuple[float, float]],
               name: str, threads: int, pid: int = 1, tid: int | None = None, **args: Any) -> None:
        """One plan run, called at `started_us` and returned at `ended_us` (perf_counter microseconds), and the
        (start, seconds) of each of its kernel steps as Plan.run(profile=True) returns them: starts count from
        the executor's own start, a few microseconds after the call's, and are placed from the call's. `threads`
        is the pool's size; each kernel's own team (a small step runs on fewer) is the plan's step_threads."""
        tid = threading.get_ident() % 2**31 if tid is None else tid
        if (pid, tid) not in self._names:
            self.name_track(pid, tid, "dlc", threading.current_thread().name)
        self.threads = max(self.threads, threads)
        base = started_us - self._origin
        end = max([ended_us - started_us] + [(s + d) * 1e6 for s, d in steps])
        self.events.append({"name": name, "cat": "plan", "ph": "X", "ts": base, "dur": end, "pid": pid, "tid": tid,
                            "args": {"kernels": len(steps), "threads": threads, **args}})
        teams = list(lowered.plan.step_threads) or [threads] * len(steps)  # of this, the latest profiled run
        for info, (start, seconds), team in zip(lowered.steps, steps, teams):
            ops, _, layer = info.label.partition(" [")
            self.events.append({
                "name": info.kernel, "cat": "kernel", "ph": "X", "ts": base + start * 1e6, "dur": seconds * 1e6,
                "pid": pid, "tid": tid,
                "args": {"group": ops, "layer": layer.rstrip("]"), "fused_ops": ops.count("+") + 1,
                         "threads": int(team), "bytes": info.bytes_moved}})

    def trace(self) -> dict[str, Any]:
        return {"traceEvents": self.events, "displayTimeUnit": "ms",
                "otherData": {"producer": "dlc", "threads": self.threads}}

    def save(self, path: str | os.PathLike[str]) -> None:
        write_atomically(Path(path), json.dumps(self.trace()).encode("utf-8"))


def profile(path: str | os.PathLike[str] | None = None) -> Profile:
    """A context manager recording every plan run (inference calls, training steps, evaluation) of every model
    while it is active, written to `path` as Chrome trace-event JSON when it ends:

        with dlc.profile("run.json") as prof:
            program.fit(data, epochs=1)
        # prof.events holds the events too; open run.json in Perfetto

    Runs are timed kernel by kernel while a profile is active (the executor reads the clock around each step:
    a few hundred nanoseconds per kernel)."""
    return Profile(path)


def recording() -> list[Profile]:
    """The profiles recording now (most plan runs see none: the check is one list read)."""
    return list(_active) if _active else []


def run_profiled(lowered: LoweredPlan, profiles: list[Profile], name: str, run_args: dict[str, Any],
                 **args: Any) -> None:
    """Runs a plan with per-step timing and records it in each active profile."""
    started = _now_us()
    steps = lowered.plan.run(**run_args, profile=True)
    ended = _now_us()
    threads = int(_core.get_num_threads())
    for p in profiles:
        p.record(lowered, started, ended, steps, name, threads, **args)
