"""Issue 25, item 10: the smaller points of a user's second day. `--json` keeps stdout one JSON object (the
`wrote` lines go to stderr); progress in a log is one line per epoch, not a redrawn bar; `program.params` are
live views and `loss_and_grads` updates batch-norm statistics, as documented; the docs install extras the way
the README does; the examples' docstrings speak of what they do, not of issue numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli

ROOT = Path(__file__).resolve().parent.parent
MODEL = """input x: f32[N, 4]
input y: i32[N]
h = dense(x, 8) |> batch_norm |> relu
output logits = dense(h, 3)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=0.01)
    epochs = 2
    batch_size = 16
}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "m.dlm").write_text(MODEL)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((48, 4)), y=rng.integers(0, 3, 48))
    return tmp_path


def test_json_output_is_only_json_with_a_history_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", str(files / "m.dlm"), "--data", str(files / "d.npz"), "--json",
                     "--history", str(files / "h.csv")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2  # the whole of stdout parses
    assert f"wrote {files / 'h.csv'}" in err and (files / "h.csv").exists()
    code = cli.main(["train", str(files / "m.dlm"), "--data", str(files / "d.npz"), "--quiet",
                     "--history", str(files / "h.json")])
    out, _ = capsys.readouterr()
    assert code == 0 and f"wrote {files / 'h.json'}" in out  # without --json, the report stays on stdout


def test_progress_in_a_log_is_one_line_per_epoch(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", str(files / "m.dlm"), "--data", str(files / "d.npz")])  # stderr: not a terminal
    _, err = capsys.readouterr()
    assert code == 0
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and re.match(r"epoch 1: loss [\d.]+, accuracy [\d.]+ \([\d.]+ s\)", lines[0])


def test_params_are_live_views_that_training_changes() -> None:
    program = dlc.compile(source=MODEL)
    view = program.params["logits.weight"]
    before = view.copy()
    with pytest.raises(ValueError):
        view[0, 0] = 1.0  # read-only: set_params changes them
    rng = np.random.default_rng(1)
    program.train_step(x=rng.standard_normal((16, 4)), y=rng.integers(0, 3, 16))
    assert not np.array_equal(view, before)  # the view taken before the step shows the trained values
    assert "views of the live" in (dlc.Program.params.__doc__ or "")


def test_loss_and_grads_updates_running_statistics_only_in_train_mode() -> None:
    program = dlc.compile(source=MODEL)
    stats = [n for n in program.params if "running" in n or "mean" in n]
    assert stats
    before = {n: program.params[n].copy() for n in stats}
    batch = {"x": np.random.default_rng(2).standard_normal((16, 4)) + 3.0, "y": np.zeros(16, np.int32)}
    program.loss_and_grads(mode="eval", **batch)
    assert all(np.array_equal(program.params[n], before[n]) for n in stats)
    program.loss_and_grads(**batch)
    assert any(not np.array_equal(program.params[n], before[n]) for n in stats)
    doc = (ROOT / "docs" / "training.md").read_text()
    assert "updates its running statistics" in doc and "views of the live parameter arrays" in doc


def test_docs_install_extras_as_the_readme_does() -> None:
    """docs/onnx.md wrote `pip install 'dlc[onnx]'` (a package on PyPI that this is not) where the README installs
    from the checkout with `".[onnx]"`."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "python").rglob("*.py"))]
    for page in pages:  # the docs, and the hints of errors for a missing extra
        text = page.read_text()
        assert not re.search(r"pip install \\?['\"]?dlc\[", text), page.name
    assert 'pip install ".[onnx]"' in (ROOT / "docs" / "onnx.md").read_text()


def test_example_docstrings_name_no_issue_numbers() -> None:
    for script in sorted((ROOT / "examples").glob("*.py")):
        text = script.read_text()
        docstring = text.split('"""')[1] if text.startswith('"""') else ""
        assert not re.search(r"issue \d+", docstring, re.IGNORECASE), script.name
