"""The accuracy report (dlc/quantize.py, `dlc quantize`): its numbers on a model whose bf16 error is known exactly,
and --max-drop's choice of the layers it returns to f32."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.quantize import precision_report, sqnr_db, task_metric

# Layer a computes u * (1 + 2^-10) - u = u * 2^-10 (and its negation) in f32; in bf16 its weight 1 + 2^-10 rounds
# to 1 and both outputs are 0, so the logits tie and argmax answers class 0 for every sample. Layer b is the
# identity, exact in bf16.
SOURCE = """input x: f32[N, 2]
input y: i32[N]
a = dense(x, 2)
output logits = dense(a, 2)
train {
    loss = cross_entropy(logits, y)
    optimizer = sgd(lr=0.1)
}
"""
EPS = 2.0 ** -10


def cancelling_model() -> tuple[dlc.Program, np.ndarray, np.ndarray]:
    program = dlc.compile(source=SOURCE, precision="bf16")
    program.set_params({"a.weight": np.array([[1 + EPS, -1 - EPS], [-1, 1]], np.float32),
                        "a.bias": np.zeros(2, np.float32), "logits.weight": np.eye(2, dtype=np.float32),
                        "logits.bias": np.zeros(2, np.float32)})
    u = np.array([1, -2, 4, -1, 2, -4, 1, 1], np.float32)  # exact in bf16
    return program, np.stack([u, u], axis=1), (u < 0).astype(np.int32)


def test_report_numbers_on_a_known_error() -> None:
    program, x, y = cancelling_model()
    report = precision_report(program.model, "bf16", {"x": x}, y, batch_size=3)  # batches of 3, 3 and 2
    a, b = report.layers
    assert (a.layer, b.layer) == ("a", "logits") and a.kernel_op == "matmul"
    assert a.sqnr_db == 0.0 and a.alone_db == 0.0  # the output is 0: noise power equals signal power
    assert a.max_error == pytest.approx(4 * EPS) and a.mean_error == pytest.approx(np.mean(np.abs(x[:, 0])) * EPS)
    assert b.alone_db == math.inf and b.output_db == math.inf  # the identity alone is exact
    assert report.outputs["logits"] == (0.0, pytest.approx(4 * EPS), pytest.approx(np.mean(np.abs(x[:, 0])) * EPS))
    assert report.f32_metric == 100 and report.reduced_metric == 62.5  # 5 of 8 labels are 0
    assert program.precision == "bf16" and not program.model.precision_policy.keep_f32  # left as it was


def test_max_drop_returns_the_harmful_layer_only() -> None:
    program, x, y = cancelling_model()
    report = precision_report(program.model, "bf16", {"x": x}, y, max_drop=1.0)
    assert report.kept_f32 == ["a"] and report.final_metric == 100 and report.drop(report.final_metric) == 0
    assert [r.kept_f32 for r in report.layers] == [True, False]
    names = [s.kernel for s in program.model.inference_plan({"N": 8}, training=False).steps]
    assert names == ["matmul", "matmul_bf16"]  # the program is left with layer a in f32


def test_max_drop_needs_labels_and_metrics_are_checked() -> None:
    program, x, _ = cancelling_model()
    with pytest.raises(ValueError, match="needs labelled data"):
        precision_report(program.model, "bf16", {"x": x}, max_drop=0.5)
    with pytest.raises(ValueError, match="metric must be one of"):
        precision_report(program.model, "bf16", {"x": x}, metric="f1")


def test_metrics() -> None:
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    labels = np.array([0, 2])
    assert task_metric("accuracy", logits, labels) == 50
    assert task_metric("nll", logits, labels) == pytest.approx(-(np.log(0.5) + np.log(0.1)) / 2)
    assert sqnr_db(np.ones(4), np.ones(4)) == math.inf and sqnr_db(np.ones(4), np.zeros(4)) == 0
    with pytest.raises(ValueError, match="do not fit"):
        task_metric("accuracy", logits, np.zeros(3, int))


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program, x, y = cancelling_model()
    program.save_checkpoint(str(tmp_path / "w.ckpt"))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    model = tmp_path / "m.dlm"
    model.write_text(SOURCE)
    args = ["quantize", str(model), "--precision", "bf16", "--params", str(tmp_path / "w.ckpt"),
            "--data", str(tmp_path / "d.npz"), "--max-drop", "1"]
    assert main([*args, "-o", str(tmp_path / "m.dlc")]) == 0
    out = capsys.readouterr().out
    assert "accuracy: f32 100.0000, bf16 62.5000 (drop +37.5000 points)" in out
    assert "--max-drop 1: kept in f32: a; accuracy 100.0000 (drop +0.0000)" in out
    loaded = dlc.load(tmp_path / "m.dlc")
    assert [s.kernel for s in loaded.model.inference_plan({"N": 2}, training=False).steps] == ["matmul", "matmul_bf16"]
    assert main([*args, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["kept_f32"] == ["a"] and body["layers"][1]["alone_db"] == "inf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["quantize", str(model), "--precision", "bf16"]) == 0  # random inputs, no labels
    assert "64 random normal inputs" in capsys.readouterr().out
