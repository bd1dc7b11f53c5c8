"""The epoch loop shared by Trainer.fit and the data-parallel fit (dlc/distributed/training.py).

Both walk the same global batches in the same order (shuffled per epoch from (seed, epoch), see loop.py),
keep the same history and call the same callbacks; they differ only in how a global batch becomes an
optimizer step, how an epoch's sums are combined and how validation runs. That difference is a `Stepper`,
so the loop exists once and a fix to it reaches both.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Mapping, Protocol

import numpy as np
from tqdm import tqdm

from ..augment import rng_for
from .loop import EarlyStopping, batches
from .recipe import TrainSpec


class Stepper(Protocol):
    """How one process trains on the global batches of an epoch."""

    shows_progress: bool  # whether this process draws the progress bar (rank 0 only, in a data-parallel job)

    def step(self, k_batch: int, idx: np.ndarray, epoch: int) -> tuple[dict[str, float], int] | None:
        """Trains on the global batch of sample indices `idx` (batch number k_batch of `epoch`). Returns its
        loss and metrics with the number of this process's samples behind them ({} and 0 when this process
        took no step), or None when the step was skipped (on_nonfinite = "skip")."""

    def combine(self, totals: np.ndarray) -> np.ndarray:
        """The epoch's sums over all processes (unchanged with one)."""

    def end_epoch(self) -> None:
        """After an epoch's last step, before its validation."""

    def validate(self, data: Any, batch_size: int) -> dict[str, float]:
        """Loss and metrics on validation data."""


class FitTrainer(Protocol):
    """What the loop needs from a trainer (dlc.Trainer)."""

    @property
    def epoch(self) -> int: ...

    @property
    def seed(self) -> int: ...

    run_state: dict[str, Any]

    def end_epoch(self) -> None: ...

    def after_epoch(self, logs: Mapping[str, float]) -> str: ...

    def spec(self) -> TrainSpec: ...


def global_batch(arrays: Mapping[str, np.ndarray], idx: np.ndarray, spec: TrainSpec, seed: int, epoch: int,
                 k_batch: int) -> dict[str, np.ndarray]:
    """The samples `idx`, augmented when the recipe asks: augmentation draws per sample in batch order from
    (seed, epoch, k_batch), so every process that cuts its shard from this batch trains on the pixels one
    process would."""
    batch = {k: v[idx] for k, v in arrays.items()}
    if spec.augment is not None and spec.augment.active:
        images = next((k for k, v in batch.items() if v.ndim == 4 and v.dtype.kind == "f"), None)
        if images is None:
            raise ValueError("augment needs an image input of shape [N, C, H, W]")
        batch[images] = spec.augment(batch[images], rng_for(seed, epoch, k_batch))
    return batch


class LocalStepper:
    """One process: each global batch is one Trainer.train_step."""

    shows_progress = True

    def __init__(self, trainer: Any, arrays: Mapping[str, np.ndarray]):
        self.trainer, self.arrays, self.spec = trainer, arrays, trainer.spec()

    def step(self, k_batch: int, idx: np.ndarray, epoch: int) -> tuple[dict[str, float], int] | None:
        out = self.trainer.train_step(**global_batch(self.arrays, idx, self.spec, self.trainer.seed, epoch,
                                                     k_batch))
        if out.get("skipped"):
            return None
        return {k: v for k, v in out.items() if k not in ("lr", "skipped")}, len(idx)

    def combine(self, totals: np.ndarray) -> np.ndarray:
        return totals

    def end_epoch(self) -> None:
        pass

    def validate(self, data: Any, batch_size: int) -> dict[str, float]:
        return self.trainer.evaluate(data, batch_size)


def fit_epochs(trainer: FitTrainer, stepper: Stepper, n: int, epochs: int, batch_size: int, *,
               validation: Any = None, callbacks: list[Callable[..., Any]] | None = None, shuffle: bool = True,
               verbose: bool = True) -> dict[str, list[float]]:
    """Trains for `epochs` epochs over n samples; returns the history of loss and metrics per epoch. Callbacks
    are called as cb(trainer, epoch, logs) after each epoch; one returning True stops training; one with an
    `on_step_end(trainer)` method is also called after every step (a checkpoint every N steps). The recipe's
    early stopping is added unless the caller passed an EarlyStopping. A trainer restored from a checkpoint
    written in the middle of an epoch continues that epoch at its next batch."""
    spec = trainer.spec()
    callbacks = list(callbacks or [])
    if spec.early_stopping is not None and not any(isinstance(c, EarlyStopping) for c in callbacks):
        callbacks.append(EarlyStopping(**spec.early_stopping))
    # Callbacks that write checkpoints run last, so what they save includes this epoch's state of the others
    # (early stopping's best value), as a resumed run needs it.
    callbacks.sort(key=lambda c: bool(getattr(c, "saves_run_state", False)))
    on_step = [c.on_step_end for c in callbacks if hasattr(c, "on_step_end")]
    history: dict[str, list[float]] = {}
    for _ in range(epochs):
        epoch = trainer.epoch
        logs = _one_epoch(trainer, stepper, n, batch_size, epoch, validation, shuffle, verbose, on_step)
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        trainer.end_epoch()
        note = trainer.after_epoch(logs)  # before the callbacks, so a checkpoint they write holds its state
        if note and verbose and stepper.shows_progress:
            print(note, file=sys.stderr)
        stop = False
        for cb in callbacks:
            stop = bool(cb(trainer, epoch, logs)) or stop
        if stop:
            break
    for cb in callbacks:
        end = getattr(cb, "on_train_end", None)
        if end is not None:
            end(trainer)
    return history


def _one_epoch(trainer: FitTrainer, stepper: Stepper, n: int, size: int, epoch: int, validation: Any, shuffle: bool,
               verbose: bool, on_step: list[Callable[[Any], Any]]) -> dict[str, float]:
    """One epoch of steps; its loss and metrics averaged over the samples behind each (phases report on their
    own batches only), the count of skipped steps, validation figures and the epoch's seconds. With step
    callbacks, the progress through the epoch (batches done and the running sums) is kept in the trainer's
    run state before each is called, so a checkpoint written there resumes at the next batch with the same
    sums: the resumed epoch reports what an uninterrupted one would."""
    order = np.random.default_rng([trainer.seed, epoch]).permutation(n) if shuffle else np.arange(n)
    progress = trainer.run_state.pop("progress", None)
    if not progress or progress.get("epoch") != epoch or progress.get("batch_size") != size:
        progress = {"epoch": epoch, "batch_size": size, "batch": 0, "sums": {}, "counts": {}, "skipped": 0,
                    "seconds": 0.0}
    sums: dict[str, float] = progress["sums"]
    counts: dict[str, int] = progress["counts"]
    start = time.perf_counter() - float(progress["seconds"])
    shown = verbose and stepper.shows_progress
    with tqdm(total=n, unit="sample", desc=f"epoch {epoch + 1}", disable=not (shown and interactive()),
              file=sys.stderr, leave=True, dynamic_ncols=True) as bar:
        for k_batch, idx in enumerate(batches(n, size, order)):
            if k_batch < progress["batch"]:  # done before the checkpoint this run resumed from
                bar.update(len(idx))
                continue
            result = stepper.step(k_batch, idx, epoch)
            if result is None:
                progress["skipped"] += 1  # every process makes the same decision, so this count is global
            else:
                values, samples = result
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v * samples
                    counts[k] = counts.get(k, 0) + samples
                # tqdm shows the rate itself (unit "sample"); the postfix adds this process's running averages.
                bar.set_postfix({k: f"{v / max(counts[k], 1):.4f}" for k, v in sums.items()}, refresh=False)
            bar.update(len(idx))
            if on_step:
                progress["batch"], progress["seconds"] = k_batch + 1, time.perf_counter() - start
                trainer.run_state["progress"] = progress
                for callback in on_step:
                    callback(trainer)
        trainer.run_state.pop("progress", None)
        keys = list(sums)  # the step's order (loss first); the same on every process, which run the same steps
        totals = stepper.combine(np.array([sums[k] for k in keys] + [counts[k] for k in keys], dtype=np.float64))
        logs = {k: float(totals[i]) / max(float(totals[len(keys) + i]), 1.0) for i, k in enumerate(keys)}
        if progress["skipped"]:
            logs["skipped"] = float(progress["skipped"])
        stepper.end_epoch()
        if validation is not None:
            logs.update({f"val_{k}": v for k, v in stepper.validate(validation, size).items()})
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
    logs["seconds"] = time.perf_counter() - start
    if shown and not interactive():  # a log file or CI: one line per epoch instead of a redrawn bar
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "seconds")
              + f" ({logs['seconds']:.3f} s)", file=sys.stderr, flush=True)
    return logs


def interactive() -> bool:
    """Whether stderr is a terminal, where a progress bar redraws itself; elsewhere (a pipe, a CI log) its
    carriage returns would pile up as one endless line."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False
