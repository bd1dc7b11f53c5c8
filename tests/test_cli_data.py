"""Issue 10, items 4, 5 and 10: `dlc train` on your own data (.npz with --map, .npy pairs, CSV, --val and
--val-split), checked against the model before the first step; a class-count mismatch is one `dlc: error:`
line; epochs are counted in English; --epochs stretches a cosine schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlc import cli

MODEL = """input x: f32[N, 6]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = sgd(lr=0.1)
    schedule = cosine(steps=100)
    epochs = 2
    batch_size = 16
}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 6)), rng.integers(0, 3, 64)  # float64, int64: NumPy's defaults
    (tmp_path / "m.dlm").write_text(MODEL)
    np.savez(tmp_path / "named.npz", x=x, y=y)
    np.savez(tmp_path / "mapped.npz", images=x, labels=y)
    np.save(tmp_path / "fx.npy", x)
    np.save(tmp_path / "fy.npy", y)
    np.savez(tmp_path / "ten.npz", x=x, y=rng.integers(0, 10, 64))
    np.savez(tmp_path / "wide.npz", x=np.zeros((64, 7)), y=y)
    rows = ["a,b,c,d,e,f,label"] + [",".join(f"{v:.6f}" for v in r) + f",{k}" for r, k in zip(x, y)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.mark.parametrize("data", [["{d}/named.npz"], ["{d}/mapped.npz", "--map", "x=images,y=labels"],
                                  ["x={d}/fx.npy,y={d}/fy.npy"], ["{d}/fx.npy,{d}/fy.npy"], ["{d}/t.csv"]])
def test_train_on_your_own_data(files: Path, capsys: pytest.CaptureFixture[str], data: list[str]) -> None:
    args = [a.format(d=files) for a in data]
    code, out, err = run(capsys, "train", files / "m.dlm", "--data", *args, "--epochs", "1", "--quiet")
    assert code == 0, err
    assert out.startswith("trained 1 epoch (4 steps)") and "train loss" in out


def test_validation_split_and_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", files / "m.dlm", "--data", files / "named.npz", "--val-split", "0.25",
                       "--json", "--quiet")
    summary = json.loads(out)
    assert code == 0 and summary["epochs"] == 2 and summary["steps"] == 6 and "val_accuracy" in summary
    code, out, _ = run(capsys, "train", files / "m.dlm", "--data", files / "named.npz", "--val", files / "t.csv",
                       "--quiet")
    assert code == 0 and "trained 2 epochs" in out and "val accuracy" in out


@pytest.mark.parametrize("data,message", [
    ("ten.npz", "training data: 'y' row 1 holds 5, but cross_entropy reads 'y' as an index below 3: 'y' holds "
                 "values 0..9 (10 classes) but the model has 3"),
    ("wide.npz", "training data: 'x' has samples of shape [7], the model's input 'x' is f32[N, 6]"),
    ("mapped.npz", "no array is named after a model input (x, y); it has images, labels: map them"),
    ("nope", "unknown dataset 'nope' (built-in: digits, sequences, pysource; your own data:"),
])
def test_data_that_does_not_fit_is_one_error_line_before_training(files: Path, capsys: pytest.CaptureFixture[str],
                                                                  data: str, message: str) -> None:
    target = files / data if data.endswith(".npz") else data
    code, out, err = run(capsys, "train", files / "m.dlm", "--data", target, "--quiet")
    assert code == 1 and out == "" and err.startswith("dlc: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_four_class_model_on_the_ten_class_sequences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "seq.dlm"
    model.write_text("input x: f32[N, T, 4]\ninput y: i32[N]\noutput logits = dense(mean(x, axis=1), 4)\n"
                     "train {\n    loss = cross_entropy(logits, y)\n}\n")
    code, _, err = run(capsys, "train", model, "--data", "sequences", "-D", "T=8", "--quiet")
    assert code == 1
    assert "'y' holds values 0..9 (10 classes) but the model has 4" in err


def test_epochs_override_stretches_a_cosine_schedule(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", files / "m.dlm", "--data", files / "named.npz", "--epochs", "4")
    assert code == 0 and "schedule cosine: steps 100 -> 200 for --epochs 4 (recipe: 2)" in err
