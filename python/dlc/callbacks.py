"""Callbacks for long runs, passed to `fit(callbacks=[...])` (and used by `dlc train`): a checkpoint every N
epochs or steps, the best checkpoint by a metric, and the history written after every epoch.

Each is called as cb(trainer, epoch, logs) after an epoch; `Checkpoint(every=N, unit="step")` also has
`on_step_end(trainer)`, which the epoch loop calls after every step. Checkpoints are written atomically (a
temporary file renamed over the target), so a run killed at any moment leaves the previous checkpoint whole,
and they carry the run's state (the position in an unfinished epoch, a plateau schedule's state, the best value
seen), so `load_checkpoint` and `fit` resume exactly where the run was. `save` decides who writes: by default
the trainer itself; a data-parallel run passes one where rank 0 writes and the others wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from .history import load_history, save_history
from .tensorboard import TensorBoardLog

__all__ = ["Checkpoint", "HistoryFile", "SaveBest", "TensorBoardLog"]

Save = Callable[[Any, str], None]


def _save(trainer: Any, path: str) -> None:
    trainer.save_checkpoint(path)


class Checkpoint:
    """Writes a checkpoint to `path` every `every` epochs (unit="epoch") or optimizer steps (unit="step").
    `path` may name {epoch} and {step} (`run-{epoch}.ckpt` keeps one file per epoch); without them the one
    file is replaced each time (the latest state, for --resume)."""

    saves_run_state = True  # fit calls it after the other callbacks of an epoch (see epochs.py)

    def __init__(self, path: str | Path, every: int = 1, unit: str = "epoch", save: Save = _save):
        if unit not in ("epoch", "step"):
            raise ValueError(f"Checkpoint unit must be 'epoch' or 'step', got {unit!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Checkpoint every must be an integer >= 1, got {every!r}")
        self.path, self.every, self.unit, self.save = str(path), every, unit, save
        self.written: list[str] = []

    def _write(self, trainer: Any) -> None:
        path = self.path.format(epoch=trainer.epoch, step=trainer.step_count)
        self.save(trainer, path)
        self.written.append(path)

    def __call__(self, trainer: Any, epoch: int, logs: Mapping[str, float]) -> bool:
        if self.unit == "epoch" and (epoch + 1) % self.every == 0:
            self._write(trainer)
        return False

    def on_step_end(self, trainer: Any) -> None:
        if self.unit == "step" and trainer.step_count % self.every == 0:
            self._write(trainer)


class SaveBest:
    """Writes a checkpoint to `path` after each epoch whose `monitor` (val_loss, val_accuracy, loss...) is the
    best so far (lower for losses, higher for accuracies; mode="min" or "max" says so explicitly). The best
    value is part of the run's state, so a resumed run does not overwrite a better checkpoint."""

    saves_run_state = True

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "auto", min_delta: float = 0.0,
                 save: Save = _save):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"SaveBest mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.path, self.monitor, self.mode, self.min_delta, self.save = str(path), monitor, mode, float(min_delta), save
        self.best_epoch: int | None = None

    def __call__(self, trainer: Any, epoch: int, logs: Mapping[str, float]) -> bool:
        if self.monitor not in logs:
            raise ValueError(f"save-best monitors '{self.monitor}', which is not among {sorted(logs)}"
                             + ("; validation metrics need validation data" if self.monitor.startswith("val_")
                                else ""))
        bests = trainer.run_state.setdefault("best", {})
        value, best = float(logs[self.monitor]), bests.get(self.monitor)
        if best is None or (value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta):
            bests[self.monitor] = value  # recorded first: the checkpoint carries its own best value
            self.best_epoch = epoch
            self.save(trainer, self.path)
        return False


class HistoryFile:
    """Writes the history (CSV or JSON by suffix, as `save_history`) after every epoch, so a run that stops
    early, crashes or is killed keeps its curves. A resumed run (trainer.epoch > 0 at its first epoch) keeps the
    rows of the file it finds for the epochs before it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"history file {self.path.name!r}: the file must end in .csv or .json")
        self.history: dict[str, list[float]] | None = None

    def __call__(self, trainer: Any, epoch: int, logs: Mapping[str, float]) -> bool:
        if self.history is None:
            self.history = self._earlier(epoch)
        for k, v in logs.items():  # a column new this epoch (skipped steps) is padded for the earlier ones
            self.history.setdefault(k, [float("nan")] * epoch)
        for k in self.history:
            self.history[k].append(float(logs.get(k, float("nan"))))
        save_history(self.history, self.path)
        return False

    def _earlier(self, epoch: int) -> dict[str, list[float]]:
        if epoch == 0 or not self.path.exists():
            return {}
        rows = load_history(self.path)
        if any(len(v) < epoch for v in rows.values()):
            return {}  # not this run's file: start afresh rather than misnumber the epochs
        return {k: v[:epoch] for k, v in rows.items()}
