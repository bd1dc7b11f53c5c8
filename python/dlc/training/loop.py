"""What fit() and evaluate() are made of: named data, mini-batches, early stopping (see trainer.py).

Shuffling for epoch e draws from a generator seeded by (program seed, e), so resuming at an epoch boundary
from a checkpoint replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..model import TensorSpec


def as_named(inputs: Mapping[str, TensorSpec], data: Any) -> dict[str, np.ndarray]:
    """Accepts {input name: array}, or a tuple/list of arrays in the order of the model's inputs."""
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items()}
    elif isinstance(data, (tuple, list)):
        names = list(inputs)
        if len(data) > len(names):
            raise ValueError(f"got {len(data)} arrays but the model has {len(names)} inputs ({', '.join(names)})")
        arrays = {n: np.asarray(a) for n, a in zip(names, data)}
    else:
        raise ValueError("data must be a dict of arrays by input name, or a tuple of arrays in input order")
    for name, a in arrays.items():
        if a.ndim == 0:  # len() below would be a bare TypeError; say what a call with this array says
            spec = inputs.get(name)
            want = (f"expected rank {len(spec.shape)} ({spec})" if spec is not None and spec.shape
                    else "fit, evaluate and predict need a leading sample axis")
            raise ValueError(f"input '{name}': {want}, got an array of shape ()")
    sizes = {n: len(a) for n, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"all data arrays need the same number of samples, got {sizes}")
    if not arrays or not next(iter(sizes.values())):
        raise ValueError("the dataset is empty")
    return arrays


def batches(n: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    """Index arrays of consecutive batches; the last one may be smaller (it is kept, not dropped)."""
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class EarlyStopping:
    """Stops when `monitor` has not improved by min_delta for `patience` epochs; with restore_best, the
    parameters (and running statistics) of the best epoch are put back. Called by fit with a Trainer, it keeps
    its state in the trainer's run state and the best parameters in its run tensors, so checkpoints carry them
    and a resumed run stops, and restores, exactly as an uninterrupted one."""

    def __init__(self, patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto"):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.patience, self.monitor, self.min_delta, self.restore_best, self.mode = (
            int(patience), monitor, float(min_delta), bool(restore_best), mode)
        self.best: float | None = None
        self.best_epoch = -1
        self.wait = 0
        self.best_params: dict[str, np.ndarray] | None = None
        self.stopped = False

    def __call__(self, program: Any, epoch: int, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise ValueError(f"early stopping monitors '{self.monitor}', which is not among {sorted(logs)}")
        state = getattr(program, "run_state", None)  # a Trainer's; absent when called with something else
        if self.best is None and state is not None and self.monitor in state.get("early_stopping", {}):
            self._resume(program, state["early_stopping"][self.monitor])
        value = logs[self.monitor]
        better = self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                       else value > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_params = {k: v.copy() for k, v in program.params.items()}
        else:
            self.wait += 1
        if state is not None:
            state.setdefault("early_stopping", {})[self.monitor] = {"best": self.best, "best_epoch": self.best_epoch,
                                                                    "wait": self.wait}
            if better and self.best_params is not None:
                program.run_tensors.update({f"best/{k}": v for k, v in self.best_params.items()})
        if not better and self.wait >= self.patience:
            self.stopped = True
            return True
        return False

    def _resume(self, program: Any, saved: dict[str, Any]) -> None:
        """The state a checkpoint carried (see Trainer.load_checkpoint)."""
        self.best, self.best_epoch, self.wait = saved["best"], int(saved["best_epoch"]), int(saved["wait"])
        kept = {k[len("best/"):]: v for k, v in program.run_tensors.items() if k.startswith("best/")}
        if self.restore_best and kept:
            self.best_params = {k: np.array(v) for k, v in kept.items()}

    def on_train_end(self, program: Any) -> None:
        if self.restore_best and self.best_params is not None:
            program.set_params(self.best_params)
        state = getattr(program, "run_state", None)
        if state is not None:  # the run is over: a later fit starts its own early stopping, as in Keras
            state.get("early_stopping", {}).pop(self.monitor, None)
            for key in [k for k in program.run_tensors if k.startswith("best/")]:
                del program.run_tensors[key]
