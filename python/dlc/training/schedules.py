"""Learning-rate schedules. Most are functions of the optimizer step (0-based); `reduce_on_plateau` is a
function of the run instead: it multiplies the rate by `factor` when the monitored metric has not improved for
`patience` epochs (Keras' ReduceLROnPlateau, PyTorch's ReduceLROnPlateau). Its state (the current scale, the
best value, epochs waited, cooldown left) is a small JSON-able dict the trainer keeps and saves in checkpoints,
so a resumed run reduces exactly when an uninterrupted one would. The rate is passed to the compiled step each
call, so changing it never recompiles."""

from __future__ import annotations

import math
from typing import Any, Mapping

PLATEAU = "reduce_on_plateau"


def learning_rate(base: float, schedule: tuple[str, Mapping[str, Any]], step: int, scale: float = 1.0) -> float:
    """The rate for `step`; `scale` is reduce_on_plateau's current factor (1 for the other schedules)."""
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
    elif name == PLATEAU:
        lr = max(base * scale, p["min_lr"])
    else:
        raise ValueError(f"unknown schedule {name}")
    warmup = int(p.get("warmup", 0))
    if warmup > 0 and step < warmup:
        lr *= (step + 1) / warmup
    return lr


def check_schedule(name: str, settings: Mapping[str, Any]) -> None:
    """What the table of defaults cannot check: reduce_on_plateau's factor, patience and mode."""
    if name != PLATEAU:
        return
    if not 0 < settings["factor"] < 1:
        raise ValueError(f"reduce_on_plateau: factor must be in (0, 1), got {settings['factor']:g}")
    if settings["patience"] < 1 or settings["cooldown"] < 0:
        raise ValueError("reduce_on_plateau: patience must be >= 1 and cooldown >= 0")
    if settings["mode"] not in ("auto", "min", "max"):
        raise ValueError(f"reduce_on_plateau: mode must be 'auto', 'min' or 'max', got {settings['mode']!r}")


def plateau_monitor(settings: Mapping[str, Any], logs: Mapping[str, float]) -> str:
    """The metric reduce_on_plateau watches: as given, or with monitor="auto" val_loss when there is
    validation, else the training loss."""
    monitor = str(settings["monitor"])
    if monitor == "auto":
        monitor = "val_loss" if "val_loss" in logs else "loss"
    if monitor not in logs:
        raise ValueError(f"reduce_on_plateau monitors '{monitor}', which is not among {sorted(logs)}")
    return monitor


def plateau_step(settings: Mapping[str, Any], state: dict[str, Any], logs: Mapping[str, float]) -> str:
    """Updates the plateau state from one epoch's logs; returns a note when the rate was reduced ("")."""
    monitor = plateau_monitor(settings, logs)
    mode = settings["mode"] if settings["mode"] != "auto" else ("max" if "acc" in monitor else "min")
    value, best = float(logs[monitor]), state.get("best")
    delta = float(settings["min_delta"])
    better = best is None or (value < best - delta if mode == "min" else value > best + delta)
    state.setdefault("scale", 1.0)
    if state.get("cooldown", 0) > 0:
        state["cooldown"] -= 1
    if better:
        state["best"], state["wait"] = value, 0
        return ""
    if state.get("cooldown", 0) > 0:
        return ""
    state["wait"] = state.get("wait", 0) + 1
    if state["wait"] < int(settings["patience"]):
        return ""
    state["scale"] *= float(settings["factor"])
    state["wait"], state["cooldown"] = 0, int(settings["cooldown"])
    return f"reduce_on_plateau: {monitor} has not improved for {int(settings['patience'])} epochs; " \
           f"learning rate x{float(settings['factor']):g} (now x{state['scale']:g} of the base rate)"
