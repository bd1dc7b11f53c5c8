"""`dlc train`'s up-front estimate of the run's length, so a newcomer knows before waiting whether a run takes
seconds or many minutes (and that --epochs shortens it).

It runs real training steps the way fit runs them (each batch gathered from the shuffled data, augmented when
the recipe says so, then trained on), for at least a whole cycle of phases and about a third of a second, and
takes their mean: a small model's step is mostly that per-step work, and the occasional slow step (the OS, the
allocator) belongs in the figure too. A median of a few steps on one reused batch was 2-3x low for the digits
VAE and GAN. A last partial batch is a second batch size, whose plans are compiled once more: the first steps'
extra time (their compilation) is added for it. The trainer's whole state (parameters, running statistics,
optimizer state, counters) is saved to a temporary checkpoint first and restored after, so the run that follows
is exactly the one it would have been without the estimate. Evaluation is left out: the figure is a rough
guide, shown as such.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from ..program import Program
from ..training.epochs import LocalStepper
from ..training.loop import batches


def measure_step_seconds(program: Program, train: dict[str, np.ndarray], size: int,
                         budget: float = 0.3) -> tuple[float, float]:
    """(seconds per training step as fit takes them, seconds to compile the plans of one batch size), the
    program's state left as it was. Steps run in whole cycles of the recipe's phases (one step without phases)
    until `budget` seconds have passed."""
    spec = program.spec()
    cycle = sum(p.steps for p in spec.phases) if spec.phases else 1
    trainer = program.trainer
    n = len(next(iter(train.values())))
    order = np.random.default_rng([trainer.seed, trainer.epoch]).permutation(n)
    full = [idx for idx in batches(n, size, order) if len(idx) == size]
    stepper = LocalStepper(trainer, train)
    with tempfile.TemporaryDirectory(prefix="dlc-estimate-") as tmp:
        saved = str(Path(tmp) / "state.ckpt")
        program.save_checkpoint(saved)
        try:
            start = time.perf_counter()
            for k in range(cycle):  # compiles each phase's plans
                stepper.step(k, full[k % len(full)], trainer.epoch)
            first = time.perf_counter() - start
            count, start = 0, time.perf_counter()
            while count < cycle or count % cycle or time.perf_counter() - start < budget:
                stepper.step(count, full[count % len(full)], trainer.epoch)
                count += 1
            per_step = (time.perf_counter() - start) / count
        finally:
            program.load_checkpoint(saved)
    return per_step, max(0.0, first - cycle * per_step)


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
    per_step, compile_seconds = measure_step_seconds(program, train, size)
    seconds = per_step * total + (compile_seconds if n % size and epochs else 0.0)
    return (f"estimated time: about {duration_text(seconds)} for {epochs} epoch{'s' * (epochs != 1)} "
            f"({total:,} steps of {size} samples, {duration_text(per_step)} each as measured now); "
            f"--epochs N to shorten")
