"""Learning-rate schedules as functions of the optimizer step (0-based). The rate is passed to the compiled
step each call, so changing it never recompiles."""

from __future__ import annotations

import math


def learning_rate(base: float, schedule: tuple[str, dict[str, float]], step: int) -> float:
    name, p = schedule
    if name == "constant":
        lr = base
    elif name == "step":
        lr = base * p["gamma"] ** (step // max(int(p["every"]), 1))
    elif name == "exponential":
        lr = base * p["gamma"] ** step
    elif name == "cosine":
        total = max(int(p["steps"]), 1)
        frac = min(step, total) / total
        lr = p["min_lr"] + (base - p["min_lr"]) * 0.5 * (1 + math.cos(math.pi * frac))
    else:
        raise ValueError(f"unknown schedule {name}")
    warmup = int(p.get("warmup", 0))
    if warmup > 0 and step < warmup:
        lr *= (step + 1) / warmup
    return lr
