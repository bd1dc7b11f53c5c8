"""fit() and evaluate(): mini-batches over NumPy arrays, seeded shuffling, a progress bar, callbacks.

Shuffling for epoch e draws from a generator seeded by (program seed, e), so resuming at an epoch boundary
from a checkpoint replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from ..augment import rng_for

if TYPE_CHECKING:
    from .api import TrainingMixin


def as_named(program: Any, data: Any) -> dict[str, np.ndarray]:
    """Accepts {input name: array}, or a tuple/list of arrays in the order of the model's inputs."""
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items()}
    elif isinstance(data, (tuple, list)):
        names = list(program.inputs)
        if len(data) > len(names):
            raise ValueError(f"got {len(data)} arrays but the model has {len(names)} inputs ({', '.join(names)})")
        arrays = {n: np.asarray(a) for n, a in zip(names, data)}
    else:
        raise ValueError("data must be a dict of arrays by input name, or a tuple of arrays in input order")
    sizes = {n: len(a) for n, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"all data arrays need the same number of samples, got {sizes}")
    if not arrays or not next(iter(sizes.values())):
        raise ValueError("the dataset is empty")
    return arrays


def batches(n: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    """Index arrays of consecutive batches; the last one may be smaller (it is kept, not dropped)."""
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def evaluate(program: "TrainingMixin", data: Any, batch_size: int | None = None) -> dict[str, float]:
    arrays = as_named(program, data)
    n = len(next(iter(arrays.values())))
    size = batch_size or program.spec().batch_size or 256
    totals: dict[str, float] = {}
    for idx in batches(n, size, np.arange(n)):
        out = program.evaluate_batch(**{k: v[idx] for k, v in arrays.items()})
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + v * len(idx)
    return {k: v / n for k, v in totals.items()}


class EarlyStopping:
    """Stops when `monitor` has not improved by min_delta for `patience` epochs; with restore_best, the
    parameters (and running statistics) of the best epoch are put back."""

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
        value = logs[self.monitor]
        better = self.best is None or (value < self.best - self.min_delta if self.mode == "min"
                                       else value > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_params = {k: v.copy() for k, v in program.params.items()}
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped = True
            return True
        return False

    def on_train_end(self, program: Any) -> None:
        if self.restore_best and self.best_params is not None:
            program.set_params(self.best_params)


def fit(program: "TrainingMixin", data: Any, *, epochs: int | None, batch_size: int | None, validation: Any,
        callbacks: list[Callable[..., Any]], shuffle: bool, verbose: bool) -> dict[str, list[float]]:
    spec = program.spec()
    arrays = as_named(program, data)
    n = len(next(iter(arrays.values())))
    epochs = epochs if epochs is not None else (spec.epochs or 1)
    size = batch_size or spec.batch_size or 32
    callbacks = list(callbacks)
    if spec.early_stopping is not None and not any(isinstance(c, EarlyStopping) for c in callbacks):
        callbacks.append(EarlyStopping(**spec.early_stopping))
    history: dict[str, list[float]] = {}
    for _ in range(epochs):
        epoch = program.epoch
        order = np.random.default_rng([program.seed, epoch]).permutation(n) if shuffle else np.arange(n)
        sums: dict[str, float] = {}
        start = time.perf_counter()
        seen = 0
        with tqdm(total=n, unit="sample", desc=f"epoch {epoch + 1}", disable=not verbose, file=sys.stderr,
                  leave=True, dynamic_ncols=True) as bar:
            for k_batch, idx in enumerate(batches(n, size, order)):
                batch = {k: v[idx] for k, v in arrays.items()}
                if spec.augment is not None and spec.augment.active:
                    images = next((k for k, v in batch.items() if v.ndim == 4 and v.dtype.kind == "f"), None)
                    if images is None:
                        raise ValueError("augment needs an image input of shape [N, C, H, W]")
                    batch[images] = spec.augment(batch[images], rng_for(program.seed, epoch, k_batch))
                out = program.train_step(**batch)
                for k, v in out.items():
                    if k != "lr":
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                seen += len(idx)
                # tqdm shows the rate itself (unit "sample": samples/s); the postfix adds running averages.
                bar.set_postfix({k: f"{v / seen:.4f}" for k, v in sums.items()}, refresh=False)
                bar.update(len(idx))
            logs = {k: v / n for k, v in sums.items()}
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in program.evaluate(validation, size).items()})
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        logs["seconds"] = time.perf_counter() - start
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        program._epoch = epoch + 1  # type: ignore[attr-defined]
        stop = False
        for cb in callbacks:
            stop = bool(cb(program, epoch, logs)) or stop
        if stop:
            break
    for cb in callbacks:
        end = getattr(cb, "on_train_end", None)
        if end is not None:
            end(program)
    return history
