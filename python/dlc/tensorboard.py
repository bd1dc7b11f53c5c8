"""TensorBoard scalars for a training run (`dlc train --tensorboard DIR`, or `fit(callbacks=[TensorBoardLog(DIR)])`):
after every epoch, each training loss and metric under DIR/train, each validation one (`val_` dropped, so the
two curves share a chart) under DIR/validation, and the learning rate. The event files are written by
tensorboardX (the `tensorboard` extra; PyTorch's torch.utils.tensorboard writer is used when tensorboardX is
not installed but torch is) and flushed each epoch, so a killed run keeps what it logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import DlcError

INSTALL = 'TensorBoard logs need tensorboardX: pip install ".[tensorboard]" (in the dlc checkout)'


def summary_writer(logdir: Path) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DlcError(INSTALL) from None
    return SummaryWriter(str(logdir))


class TensorBoardLog:
    """A fit callback writing scalars per epoch (the step axis is the epoch number, from 1)."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self._writers: dict[str, Any] = {"train": summary_writer(self.logdir / "train")}  # fails before training

    def _writer(self, run: str) -> Any:
        if run not in self._writers:
            self._writers[run] = summary_writer(self.logdir / run)
        return self._writers[run]

    def __call__(self, trainer: Any, epoch: int, logs: Mapping[str, float]) -> bool:
        for key, value in logs.items():
            run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(run).add_scalar(tag, float(value), epoch + 1)
        self._writer("train").add_scalar("lr", float(trainer.learning_rate), epoch + 1)
        for writer in self._writers.values():
            writer.flush()
        return False

    def on_train_end(self, trainer: Any) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
