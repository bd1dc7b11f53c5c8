"""`dlc train --checkpoint-every/--save-best/--resume/--history/--tensorboard` (issue 25, item 7): a real run is
killed with SIGKILL in the middle, resumed with --resume, and ends bit-identical to a run never stopped."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from dlc import cli
from dlc.history import load_history

MODEL = """
input x: f32[N, 16]
input y: i32[N]
h = dense(x, 64) |> relu |> dropout(0.1)
output logits = dense(h, 4)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=3e-3)
    schedule = reduce_on_plateau(patience=1, factor=0.5)
    epochs = 20
    batch_size = 8
}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, :2] > 0).astype(np.int32) @ np.array([1, 2], np.int32))
    (tmp_path / "m.dlm").write_text(MODEL)
    return tmp_path


def train_command(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dlc", "train", str(folder.parent / "m.dlm"), "--data", str(folder.parent / "d.npz"),
            "--val-split", "0.25", "--threads", "1", "--quiet", "--out", str(folder / "run.ckpt"),
            "--checkpoint-every", "10steps", "--history", str(folder / "h.csv"), *extra]


def test_a_killed_run_resumes_bit_identically(files: Path) -> None:
    (files / "ref").mkdir()
    (files / "run").mkdir()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    killed = subprocess.Popen(train_command(files / "run"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    # Killed once it has finished an epoch and written a checkpoint, well before its 20 epochs are done.
    deadline = time.monotonic() + 120
    while not ((files / "run" / "h.csv").exists() and (files / "run" / "run.ckpt").exists()):
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    done = len(load_history(files / "run" / "h.csv")["loss"])
    assert 1 <= done < 20
    reference = subprocess.run(train_command(files / "ref"), env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    resumed = subprocess.run(train_command(files / "run", "--resume"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "trained 20 epochs" in resumed.stdout
    a, b = load_file(str(files / "ref" / "run.ckpt")), load_file(str(files / "run" / "run.ckpt"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # parameters and optimizer state
    ref_h, run_h = load_history(files / "ref" / "h.csv"), load_history(files / "run" / "h.csv")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):  # every epoch, those before the kill included
        assert run_h[key] == ref_h[key]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of TensorBoard event files (TFRecord framing: length, its CRC, the record, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event
    out: dict[str, list[tuple[int, float]]] = {}
    for path in folder.iterdir():
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_save_best_tensorboard_and_flag_checks(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboardX")
    base = ["train", files / "m.dlm", "--data", files / "d.npz", "--quiet", "--epochs", "3"]
    code, _, err = run(capsys, *base, "--save-best", "val_loss")
    assert code == 1 and "--save-best needs --out CKPT" in err
    code, _, err = run(capsys, *base, "--out", files / "r.ckpt", "--checkpoint-every", "2hours")
    assert code == 2 and "expected N, Nepochs or Nsteps" in err
    code, out, err = run(capsys, *base, "--val-split", "0.25", "--out", files / "r.ckpt", "--save-best",
                         "val_accuracy", "--checkpoint-every", "1", "--tensorboard", files / "tb", "--history",
                         files / "h.json")
    assert code == 0, err
    history = load_history(files / "h.json")
    best = load_file(str(files / "r.best.ckpt"))
    assert best.keys() == load_file(str(files / "r.ckpt")).keys()
    scalars = events(files / "tb" / "train")
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["loss"]] == pytest.approx(history["loss"])
    assert [s for s, _ in scalars["lr"]] == [1, 2, 3]
    assert [v for _, v in events(files / "tb" / "validation")["accuracy"]] == pytest.approx(history["val_accuracy"])
    code, _, err = run(capsys, *base, "--out", files / "new.ckpt", "--resume")
    assert code == 0 and "does not exist yet; starting a new run" in err
