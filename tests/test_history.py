"""Training history as CSV/JSON and learning curves (`dlc train --history/--plot`, dlc.history)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli
from dlc.history import load_history, metric_names, plot_history, save_history

HISTORY = {"loss": [2.0, 1.0, 0.5], "accuracy": [0.2, 0.6, 0.9], "val_loss": [2.1, 1.2, 0.8],
           "val_accuracy": [0.1, 0.5, 0.7], "seconds": [0.1, 0.1, 0.1]}


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"h{suffix}"
    save_history(HISTORY, path)
    assert load_history(path) == HISTORY


def test_csv_has_one_row_per_epoch(tmp_path: Path) -> None:
    save_history(HISTORY, tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"
    assert lines[1] == "1,2.0,0.2,2.1,0.1,0.1" and len(lines) == 4
    save_history(HISTORY, tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["epoch"] == [1, 2, 3]


def test_bad_history(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end in .csv or .json"):
        save_history(HISTORY, tmp_path / "h.txt")
    with pytest.raises(ValueError, match="different lengths"):
        save_history({"loss": [1.0], "val_loss": []}, tmp_path / "h.csv")


def test_plot_has_a_panel_per_metric(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert metric_names(HISTORY) == ["loss", "accuracy"]
    plot_history(HISTORY, tmp_path / "curves.png", title="run")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_history_saved(tmp_path: Path) -> None:
    program = dlc.compile(source="input x: f32[N, 4]\ninput y: i32[N]\noutput logits = dense(x, 3)\n"
                                 "train {\n  loss = cross_entropy(logits, y)\n  metrics = [accuracy(logits, y)]\n"
                                 "  optimizer = sgd(lr=0.1)\n}\n")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), np.float32), rng.integers(0, 3, 32).astype(np.int32)
    history = program.fit({"x": x, "y": y}, epochs=2, batch_size=16, validation=(x, y), verbose=False)
    save_history(history, tmp_path / "h.csv")
    loaded = load_history(tmp_path / "h.csv")
    assert set(loaded) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert loaded["val_loss"] == pytest.approx(history["val_loss"])


def test_cli_train_writes_history_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    model = Path(__file__).resolve().parent.parent / "models" / "digits_mlp.dlm"
    history, plot = tmp_path / "h.json", tmp_path / "curves.png"
    code = cli.main(["train", str(model), "--data", "digits", "--epochs", "1", "--batch", "256", "--quiet",
                     "--history", str(history), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {history}" in out and f"wrote {plot}" in out
    columns = json.loads(history.read_text())
    assert columns["epoch"] == [1] and len(columns["loss"]) == 1
    assert plot.read_bytes()[:4] == b"\x89PNG"


CLASSIFIER = """input x: f32[N, 6]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = sgd(lr=0.1)
    epochs = 3
    batch_size = 16
}
"""


@pytest.mark.parametrize("validation", [["--val", "{d}/val.npz"], ["--val-split", "0.25"]])
def test_cli_curves_include_the_validation_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, validation: list[str]) -> None:
    """Issue 10: with --val or --val-split, the history has a val_ column per metric, one value per epoch, and
    every panel of --plot draws the validation curve next to the training one."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    panels: list[tuple[str, list[str]]] = []
    savefig = Figure.savefig

    def spy(fig: Figure, *args: object, **kwargs: object) -> None:
        panels.extend((ax.get_title(), [line.get_label() for line in ax.get_lines()]) for ax in fig.axes)
        savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    rng = np.random.default_rng(0)
    (tmp_path / "m.dlm").write_text(CLASSIFIER)
    np.savez(tmp_path / "train.npz", x=rng.standard_normal((64, 6)), y=rng.integers(0, 3, 64))
    np.savez(tmp_path / "val.npz", x=rng.standard_normal((32, 6)), y=rng.integers(0, 3, 32))
    history, plot = tmp_path / "h.csv", tmp_path / "curves.png"
    code = cli.main(["train", str(tmp_path / "m.dlm"), "--data", str(tmp_path / "train.npz"),
                     *[a.format(d=tmp_path) for a in validation], "--quiet", "--history", str(history),
                     "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert code == 0, err
    columns = load_history(history)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(columns)
    assert len(columns["val_loss"]) == len(columns["loss"]) == 3
    assert f"val loss {columns['val_loss'][-1]:.4f}" in out  # the summary line reports the same evaluation
    assert panels == [("loss", ["train", "validation"]), ("accuracy", ["train", "validation"])]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_a_bad_history_name_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = Path(__file__).resolve().parent.parent / "models" / "digits_mlp.dlm"
    code = cli.main(["train", str(model), "--data", "digits", "--history", str(tmp_path / "h.txt")])
    assert code == 1 and "--history" in capsys.readouterr().err
