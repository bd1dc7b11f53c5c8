"""`dlc train`'s up-front estimate of the run's length, so a newcomer knows before waiting whether a run takes
seconds or many minutes (and that --epochs shortens it).

It times real training steps on the first batch (the median of three, after one that compiles the plans) and
multiplies by the run's step count. The trainer's whole state (parameters, running statistics, optimizer state, counters)
is saved to a temporary checkpoint first and restored after, so the run that follows is exactly the one it
would have been without the estimate. Evaluation and the first steps' compilation are left out: the figure is
a rough guide, shown as such.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from ..program import Program


def measure_step_seconds(program: Program, batch: dict[str, np.ndarray], rounds: int = 3) -> float:
    """Seconds per training step on `batch`, the program's state left as it was: the median of `rounds` timed
    rounds (one step, or one of each phase of a multi-phase recipe such as a GAN's), after one round that
    compiles the plans. The median, as one round slowed by another process says little about the run."""
    spec = program.spec()
    steps = sum(p.steps for p in spec.phases) if spec.phases else 1
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dlc-estimate-") as tmp:
        saved = str(Path(tmp) / "state.ckpt")
        program.save_checkpoint(saved)
        try:
            for _ in range(steps):
                program.train_step(**batch)
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(steps):
                    program.train_step(**batch)
                times.append((time.perf_counter() - start) / steps)
        finally:
            program.load_checkpoint(saved)
    return float(np.median(times))


def duration_text(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_line(program: Program, train: dict[str, np.ndarray], epochs: int | None,
                  batch_size: int | None) -> str:
    """'estimated time: about 5 min for 20 epochs (...); --epochs N to shorten', from measured steps."""
    epochs, size = program.trainer.run_length(epochs, batch_size)
    n = len(next(iter(train.values())))
    size = min(size, n)
    total = math.ceil(n / size) * epochs
    per_step = measure_step_seconds(program, {k: v[:size] for k, v in train.items()})
    return (f"estimated time: about {duration_text(per_step * total)} for {epochs} epoch{'s' * (epochs != 1)} "
            f"({total:,} steps of {size} samples, {duration_text(per_step)} each as measured now); "
            f"--epochs N to shorten")
