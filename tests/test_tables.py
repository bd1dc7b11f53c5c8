"""Issue 25, items 2, 3 and 4: training from any table. CSV regression targets (a float column, several
columns), class names mapped to integers (the mapping kept in the checkpoint and used by predict), --label by
name or index, the default target column stated, the line, row and column named in every data error, NaN/inf
found before the first step, `--data x.npy,y.npy` for regression, and the same checks in fit, evaluate and
predict as on the command line (an out-of-range label names 'y' and cross_entropy, not an internal op)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli

REGRESSION = """input x: f32[N, 3]
input t: f32[N{width}]
output pred = dense(x, {out})
train {{
    loss = mse(pred, t)
    optimizer = adam(lr=0.05)
    epochs = 30
    batch_size = 16
}}
"""

CLASSES = """input x: f32[N, 2]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=0.1)
    epochs = 40
    batch_size = 16
}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n")
    return path


def regression_table(tmp_path: Path, targets: int) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 3))
    w = rng.standard_normal((3, targets))
    y = x @ w + 0.5
    header = ["a", "b", "c"] + [f"y{k}" for k in range(targets)]
    return write_csv(tmp_path / "reg.csv", header, [[*map(float, r), *map(float, t)] for r, t in zip(x, y)]), x, y


def test_csv_regression_on_a_float_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, _, _ = regression_table(tmp_path, 1)
    model = tmp_path / "r.dlm"
    model.write_text(REGRESSION.format(width="", out=1).replace("output pred = dense(x, 1)",
                                                               "output pred = sum(dense(x, 1), axis=1)"))
    code, out, err = run(capsys, "train", model, "--data", table, "--json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["train_loss"] < 0.05  # it learned the linear map, so the targets were the floats


def test_csv_several_regression_targets_by_name_and_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, _, _ = regression_table(tmp_path, 2)
    model = tmp_path / "r2.dlm"
    model.write_text(REGRESSION.format(width=", 2", out=2))
    for label in ("y0,y1", "3,-1"):
        code, out, err = run(capsys, "train", model, "--data", table, "--label", label, "--json",
                             "--out", tmp_path / "r.ckpt")
        assert code == 0, err
        assert json.loads(out)["train_loss"] < 0.05
        assert "target columns 'y0', 'y1'" in err
    code, _, err = run(capsys, "train", model, "--data", table, "--label", "y1", "--quiet")
    assert code == 1 and "input 'x' is f32[N, 3] but the table has 4 feature columns (a, b, c, y0)" in err
    wide = tmp_path / "w.dlm"
    wide.write_text(REGRESSION.format(width=", 2", out=2).replace("f32[N, 3]", "f32[N, 4]"))
    code, _, err = run(capsys, "train", wide, "--data", table, "--label", "y1", "--quiet")
    assert code == 1 and "the model's target input 't' is f32[N, 2], but the data has 1 target value" in err
    code, _, err = run(capsys, "train", model, "--data", table, "--label", "9", "--quiet")
    assert code == 1 and "column index 9 is out of range (" in err
    code, _, err = run(capsys, "train", model, "--data", table, "--label", "z", "--quiet")
    assert code == 1 and "has no column 'z' (columns: a, b, c, y0, y1)" in err


def test_npy_pair_regression_as_documented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3))
    np.save(tmp_path / "regx.npy", x)
    np.save(tmp_path / "regy.npy", x @ np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]]))
    model = tmp_path / "r2.dlm"
    model.write_text(REGRESSION.format(width=", 2", out=2))
    code, out, err = run(capsys, "train", model, "--data", f"{tmp_path / 'regx.npy'},{tmp_path / 'regy.npy'}",
                         "--json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["train_loss"] < 0.05


def test_the_default_target_column_is_stated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [[0.1 * i, 0.2, i % 3] for i in range(30)]
    table = write_csv(tmp_path / "c.csv", ["p", "q", "kind"], rows)
    model = tmp_path / "c.dlm"
    model.write_text(CLASSES)
    code, _, err = run(capsys, "train", model, "--data", table, "--epochs", "1")
    assert code == 0, err
    assert f"{table}: target column 'kind' (the last column, by default; --label NAME|INDEX[,...] chooses)" in err
    code, out, _ = run(capsys, "train", "--help")
    assert "default: the column named 'label', else the last column" in " ".join(out.split())


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    return centers[k] + 0.3 * rng.standard_normal((n, 2)), k


def test_string_class_labels_become_integers_kept_in_the_checkpoint(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    names = np.array(["setosa", "versicolor", "virginica"])
    x, k = blobs(90, 0)
    table = write_csv(tmp_path / "iris.csv", ["u", "v", "species"], [[*r, names[c]] for r, c in zip(x, k)])
    model = tmp_path / "c.dlm"
    model.write_text(CLASSES)
    code, out, err = run(capsys, "train", model, "--data", table, "--out", tmp_path / "c.ckpt", "--json", "--quiet")
    assert code == 0, err
    program = dlc.compile(model)
    program.load_checkpoint(str(tmp_path / "c.ckpt"))
    assert program.classes == ["setosa", "versicolor", "virginica"]
    xt, kt = blobs(30, 1)
    predicted = program.predict({"x": xt})
    assert (predicted["logits_class"] == names[kt]).mean() > 0.9
    np.testing.assert_array_equal(predicted["logits_class"], names[np.argmax(predicted["logits"], axis=1)])
    # eval maps the names through the checkpoint's classes; a name it never saw is named with its row
    code, out, err = run(capsys, "eval", model, "--params", tmp_path / "c.ckpt", "--data", table)
    assert code == 0 and "test accuracy" in out, err
    bad = write_csv(tmp_path / "bad.csv", ["u", "v", "species"], [[0, 0, "setosa"], [1, 1, "daisy"]])
    code, _, err = run(capsys, "eval", model, "--params", tmp_path / "c.ckpt", "--data", bad)
    assert code == 1 and f"{bad} line 3, data row 2, column 'species'" in err and "'daisy'" in err
    # the artifact carries them too, and dlc run answers with the names
    assert run(capsys, "compile", model, "--params", tmp_path / "c.ckpt", "-o", tmp_path / "c.dlc")[0] == 0
    np.save(tmp_path / "xt.npy", xt)
    code, out, err = run(capsys, "run", tmp_path / "c.dlc", "--input", f"x={tmp_path / 'xt.npy'}")
    assert code == 0 and "logits_class: class[30]" in out, err
    assert dlc.load(tmp_path / "c.dlc").classes == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("rows,message", [
    ([[1, 2, 0], [1, "abc", 1]], "line 3, data row 2, column 'q': 'abc' is not a number"),
    ([[1, 2, 0], [1, "", 1]], "line 3, data row 2, column 'q': an empty cell is not a number"),
    ([[1, 2, 0], [1, 2]], "line 3, data row 2: 2 cells, the header has 3 columns"),
    ([[1, 2, 0], [1, 2, 0, 9]], "line 3, data row 2: 4 cells, the header has 3 columns"),
    ([[1, 2, 4, 0], [1, 2, 0, 9]], "line 2, data row 1: 4 cells, the header has 3 columns"),
    ([], ": no data rows after the header"),
    ([[1, 2, 0], [1, 2, 7]], "line 3, data row 2, column 'kind' holds 7, but cross_entropy reads 'y'"),
    ([[1, 2, 0], [1, 2, 0.5]], "line 3, data row 2, column 'kind' holds 0.5, not an integer"),
    ([[1, 2, 0], [1, "nan", 1]], "line 3, data row 2, column 'q' holds nan"),
    ([[1, 2, 0], [1, 2, 1], ["-inf", 2, 1]], "line 4, data row 3, column 'p' holds -inf"),
])
def test_every_table_error_names_line_row_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     rows: list[list[object]], message: str) -> None:
    table = write_csv(tmp_path / "c.csv", ["p", "q", "kind"], rows)
    model = tmp_path / "c.dlm"
    model.write_text(CLASSES)
    code, out, err = run(capsys, "train", model, "--data", table, "--quiet")
    assert code == 1 and out == "" and err.startswith("dlc: error:")
    assert f"{table}{message}" in err if message.startswith(":") else f"{table} {message}" in err


def test_autoencoder_tables_are_all_features_and_checked_alike(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "ae.dlm"
    model.write_text("input x: f32[N, 3]\noutput r = dense(x, 3)\ntrain {\n    loss = mse(r, x)\n    epochs = 1\n}\n")
    good = write_csv(tmp_path / "a.csv", ["p", "q", "r"], [[1, 2, 3], [4, 5, 6]])
    code, out, err = run(capsys, "train", model, "--data", good, "--quiet")
    assert code == 0 and "train loss" in out, err
    wide = write_csv(tmp_path / "w.csv", ["p", "q", "r"], [[1, 2, 3], [4, 5, 6, 7]])
    code, _, err = run(capsys, "train", model, "--data", wide, "--quiet")
    assert code == 1 and f"{wide} line 3, data row 2: 4 cells, the header has 3 columns" in err


def test_a_quoted_class_name_may_hold_the_delimiter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "q.csv"
    table.write_text('p,q,kind\n1,2,"a, b"\n3,4,c\n0,1,"a, b"\n')
    model = tmp_path / "c.dlm"
    model.write_text(CLASSES)
    code, _, err = run(capsys, "train", model, "--data", table, "--quiet", "--out", tmp_path / "q.ckpt")
    assert code == 0, err
    program = dlc.compile(model)
    program.load_checkpoint(str(tmp_path / "q.ckpt"))
    assert program.classes == ["a, b", "c"]


def test_text_in_a_regression_target_names_the_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_csv(tmp_path / "r.csv", ["a", "b", "c", "y"], [[1, 2, 3, 0.5], [1, 2, 3, "high"]])
    model = tmp_path / "r.dlm"
    model.write_text(REGRESSION.format(width=", 1", out=1))
    code, _, err = run(capsys, "train", model, "--data", table, "--quiet")
    assert code == 1 and f"{table} line 3, data row 2, column 'y': 'high' is not a number" in err


def test_nan_is_found_before_the_first_step_without_hiding_advice(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    x, y = np.random.default_rng(0).standard_normal((40, 2)), np.arange(40) % 3
    x[17, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=y)
    model = tmp_path / "c.dlm"
    model.write_text(CLASSES)
    code, out, err = run(capsys, "train", model, "--data", tmp_path / "d.npz")
    assert code == 1 and "estimated time" not in err and "epoch 1" not in err  # before any step, timing ones too
    assert "training data: 'x' row 17, column 1 holds nan" in err
    assert "on_nonfinite" not in err and "fix or drop that row" in err


def test_fit_evaluate_predict_apply_the_same_checks() -> None:
    program = dlc.compile(source=CLASSES)
    x, y = blobs(20, 0)
    y[3] = 10
    with pytest.raises(ValueError, match=r"fit data: 'y' row 3 holds 10, but cross_entropy reads 'y' as an index "
                                         r"below 3"):
        program.fit({"x": x, "y": y}, epochs=1, verbose=False)
    with pytest.raises(ValueError, match=r"evaluate data: 'y' row 3 holds 10"):
        program.evaluate({"x": x, "y": y})
    assert program.step_count == 0
    y[3] = 1
    x[5, 0] = np.inf
    for call in (lambda: program.fit((x, y), epochs=1, verbose=False), lambda: program.evaluate((x, y)),
                 lambda: program.predict({"x": x})):
        with pytest.raises(ValueError, match=r"'x' row 5, column 0 holds inf"):
            call()
    x[5, 0] = 0.0
    with pytest.raises(ValueError, match=r"validation data: 'x' row 2, column 1 holds nan"):
        bad = x.copy()
        bad[2, 1] = np.nan
        program.fit((x, y), epochs=1, verbose=False, validation=(bad, y))
    assert program.step_count == 0


def test_fit_takes_class_names_and_predict_answers_with_them(tmp_path: Path) -> None:
    program = dlc.compile(source=CLASSES)
    x, k = blobs(120, 0)
    names = np.array(["cat", "dog", "eel"])
    program.fit({"x": x, "y": names[k]}, verbose=False)
    assert program.classes == ["cat", "dog", "eel"]
    assert program.evaluate({"x": x, "y": names[k]})["accuracy"] > 0.9
    out = program.predict((x,))
    assert (out["logits_class"] == names[k]).mean() > 0.9
    with pytest.raises(ValueError, match=r"evaluate data: 'y' row 1 holds the class 'emu', which is not one of"):
        program.evaluate({"x": x[:2], "y": np.array(["cat", "emu"])})
    program.save_checkpoint(str(tmp_path / "c.ckpt"))
    again = dlc.compile(source=CLASSES)
    again.load_checkpoint(str(tmp_path / "c.ckpt"))
    assert again.classes == ["cat", "dog", "eel"]
    with pytest.raises(ValueError, match="has no classes to map them to"):
        dlc.compile(source=CLASSES).evaluate({"x": x, "y": names[k]})
