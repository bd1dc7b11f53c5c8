"""Long runs (issue 25, item 7): checkpoints every N epochs or steps, the best checkpoint by a metric, the
history written after every epoch, a reduce_on_plateau schedule whose state is in the checkpoint, and a run
resumed from a checkpoint written in the middle of an epoch that ends bit-identical to one never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import dlc
from dlc.history import load_history
from dlc.callbacks import Checkpoint, HistoryFile, SaveBest

MODEL = """
input x: f32[N, 12]
input y: i32[N]
h = dense(x, 32) |> relu |> dropout(0.2)
output logits = dense(h, 3)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=0.01)
    SCHEDULE
    epochs = 4
    batch_size = 16
}
"""


def data(n: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)}


def program(schedule: str = "") -> dlc.Program:
    return dlc.compile(source=MODEL.replace("SCHEDULE", schedule), seed=3)


def tensors(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path))


def test_a_run_resumed_mid_epoch_is_bit_identical(tmp_path: Path) -> None:
    train, val = data(), data(40, 1)
    reference = program("schedule = reduce_on_plateau(patience=1, factor=0.5)")
    ref_history = reference.fit(train, validation=val, verbose=False)
    reference.save_checkpoint(str(tmp_path / "ref.ckpt"))

    first = program("schedule = reduce_on_plateau(patience=1, factor=0.5)")
    every = Checkpoint(tmp_path / "run.ckpt", every=5, unit="step")
    first.fit(train, epochs=2, validation=val, verbose=False, callbacks=[every])  # 14 steps: last written at 10
    assert first.step_count == 14 and every.written == [str(tmp_path / "run.ckpt")] * 2

    resumed = program("schedule = reduce_on_plateau(patience=1, factor=0.5)")
    resumed.load_checkpoint(str(tmp_path / "run.ckpt"))
    assert (resumed.epoch, resumed.step_count) == (1, 10)  # in the middle of the second epoch
    history = resumed.fit(train, epochs=4 - resumed.epoch, validation=val, verbose=False)
    resumed.save_checkpoint(str(tmp_path / "resumed.ckpt"))
    a, b = tensors(tmp_path / "ref.ckpt"), tensors(tmp_path / "resumed.ckpt")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for key in ("loss", "accuracy", "val_loss"):  # the resumed epoch reports the sums from before the stop too
        assert history[key] == ref_history[key][1:]
    assert resumed.trainer.run_state["plateau"] == reference.trainer.run_state["plateau"]


def test_reduce_on_plateau_reduces_and_its_state_is_in_the_checkpoint(tmp_path: Path) -> None:
    # min_delta=10: no epoch counts as an improvement, so the rate is cut every `patience` epochs after the first
    schedule = "schedule = reduce_on_plateau(monitor=\"loss\", patience=2, factor=0.25, min_delta=10, min_lr=1e-3)"
    p = program(schedule)
    p.fit(data(), epochs=3, verbose=False)
    assert p.trainer.run_state["plateau"]["scale"] == 0.25 and p.trainer.learning_rate == pytest.approx(0.0025)
    p.fit(data(), epochs=2, verbose=False)
    state = p.trainer.run_state["plateau"]
    assert state["scale"] == 0.0625 and p.trainer.learning_rate == pytest.approx(1e-3)  # min_lr is the floor
    p.save_checkpoint(str(tmp_path / "p.ckpt"))
    q = program(schedule)
    q.load_checkpoint(str(tmp_path / "p.ckpt"))
    assert q.trainer.run_state["plateau"] == state


def test_reduce_on_plateau_arguments_are_checked() -> None:
    for args, message in (("monitor=3", "monitor must be text"), ("patience=\"x\"", "patience must be a number"),
                          ("factor=2", "factor must be in"), ("mode=\"up\"", "mode must be")):
        with pytest.raises(dlc.DlcError, match=message):
            program(f"schedule = reduce_on_plateau({args})").spec()
    p = program("schedule = reduce_on_plateau(monitor=\"val_accuracy\")")
    with pytest.raises(ValueError, match="monitors 'val_accuracy'"):
        p.fit(data(), epochs=1, verbose=False)


def test_save_best_and_history_after_every_epoch(tmp_path: Path) -> None:
    p = program()
    seen: list[list[float]] = []
    best = SaveBest(tmp_path / "best.ckpt", monitor="val_accuracy")
    hist = HistoryFile(tmp_path / "h.json")

    def peek(trainer: object, epoch: int, logs: dict[str, float]) -> bool:
        seen.append(json.loads((tmp_path / "h.json").read_text())["loss"])  # already on disk for this epoch
        return False

    history = p.fit(data(), validation=data(40, 1), verbose=False, callbacks=[hist, best, peek])
    assert [len(s) for s in seen] == [1, 2, 3, 4] and load_history(tmp_path / "h.json")["loss"] == history["loss"]
    stored = dlc.compile(source=MODEL.replace("SCHEDULE", ""))
    stored.load_checkpoint(str(tmp_path / "best.ckpt"))
    accuracies = history["val_accuracy"]
    assert stored.epoch == best.best_epoch + 1 and accuracies[best.best_epoch] == max(accuracies)
    assert stored.trainer.run_state["best"]["val_accuracy"] == max(accuracies)
    with pytest.raises(ValueError, match="validation metrics need validation data"):
        program().fit(data(), epochs=1, verbose=False, callbacks=[SaveBest(tmp_path / "b.ckpt")])


def test_checkpoint_every_n_epochs_with_names(tmp_path: Path) -> None:
    cb = Checkpoint(tmp_path / "e{epoch}.ckpt", every=2)
    program().fit(data(), verbose=False, callbacks=[cb])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2.ckpt", "e4.ckpt"]
    with pytest.raises(ValueError, match="unit must be"):
        Checkpoint(tmp_path / "x.ckpt", unit="hour")


def test_early_stopping_resumes_with_its_state_and_best_parameters(tmp_path: Path) -> None:
    """A recipe with early stopping (restore_best) killed mid-run stops at the same epoch and restores the same
    best parameters when resumed: its best value, patience count and best parameters are in the checkpoint."""
    stopping = "early_stopping = early_stopping(patience=2, monitor=\"val_loss\", min_delta=0.05)\n    epochs = 12"
    source = MODEL.replace("SCHEDULE", stopping).replace("    epochs = 4\n", "")
    train, val = data(), data(40, 1)
    reference = dlc.compile(source=source, seed=3)
    ref_history = reference.fit(train, validation=val, verbose=False)
    assert len(ref_history["loss"]) < 12  # it did stop early
    reference.save_checkpoint(str(tmp_path / "ref.ckpt"))

    first = dlc.compile(source=source, seed=3)
    first.fit(train, epochs=len(ref_history["loss"]) - 1, validation=val, verbose=False,
              callbacks=[Checkpoint(tmp_path / "run.ckpt")])
    resumed = dlc.compile(source=source, seed=3)
    resumed.load_checkpoint(str(tmp_path / "run.ckpt"))
    history = resumed.fit(train, epochs=12 - resumed.epoch, validation=val, verbose=False)
    assert len(history["loss"]) == 1  # stops where the uninterrupted run stopped
    resumed.save_checkpoint(str(tmp_path / "resumed.ckpt"))
    a, b = tensors(tmp_path / "ref.ckpt"), tensors(tmp_path / "resumed.ckpt")
    params = [k for k in a if k.startswith("param/")]
    assert all(np.array_equal(a[k], b[k]) for k in params)  # the same best epoch's parameters put back
    assert not any(k.startswith("run/") for k in b)  # the run is over: nothing of early stopping is kept
