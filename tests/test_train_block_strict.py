"""Issue 10, item 1: the train block is strict. A mistyped setting is a located error with a "did you mean";
assignments that define tensors (terms of the loss) still work."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import dlc

MODEL = """input x: f32[N, 4]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    %s
}
"""


@pytest.mark.parametrize("line,message,column", [
    ("epoch = 5", "unknown training setting 'epoch'; did you mean 'epochs'?", 5),
    ("batchsize = 128", "unknown training setting 'batchsize'; did you mean 'batch_size'?", 5),
    ("learning_rate = 0.1", "unknown training setting 'learning_rate'; the learning rate is an optimizer "
                            "argument, e.g. optimizer = adam(lr=0.001)", 5),
    ("optimiser = adam(lr=0.1)", "unknown training setting 'optimiser'; did you mean 'optimizer'?", 5),
    ("opt = sgd(lr=0.1)", "did you mean 'optimizer = sgd(...)'?", 5),
    ("optimizer = Adam(lr=0.1)", "unknown optimizer 'Adam'; did you mean 'adam'?", 17),
    ("schedule = Cosine(steps=10)", "unknown schedule 'Cosine'; did you mean 'cosine'?", 16),
    ("foo = 3", "unknown training setting 'foo' (settings: optimizer, schedule,", 5),
])
def test_mistyped_settings_are_located_errors(line: str, message: str, column: int) -> None:
    program = dlc.compile(source=MODEL % line)
    with pytest.raises(dlc.CompileError) as info:
        program.spec()
    assert message in str(info.value)
    assert (info.value.loc.line, info.value.loc.col) == (6, column)


def test_tensor_assignments_still_define_terms_of_the_loss() -> None:
    source = MODEL.replace("loss = cross_entropy(logits, y)", "penalty = mean(square(logits))\n"
                           "    loss = cross_entropy(logits, y) + 0.01 * penalty") % "epochs = 2"
    assert dlc.compile(source=source).spec().epochs == 2


# Issue 26, item 3: settings and terms of the loss cannot collide silently.

@pytest.mark.parametrize("name", ["l1", "l2", "epochs", "clip_norm", "on_nonfinite"])
def test_a_term_may_not_take_a_settings_name(name: str) -> None:
    source = MODEL.replace("loss = cross_entropy(logits, y)", f"{name} = mean(abs(logits))\n"
                           f"    loss = cross_entropy(logits, y) + {name}") % ""
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(source=source).spec()
    message = str(info.value)
    assert f"'{name}' is a training setting, not a tensor; give this term another name" in message
    assert "TensorVal" not in message
    assert (info.value.loc.line, info.value.loc.col) == (5, 5)


@pytest.mark.parametrize("name", ["loss_a", "lossa", "metric", "epoch_term", "optimizer_loss"])
def test_a_tensor_assigned_to_a_new_name_is_a_term_whatever_it_resembles(name: str) -> None:
    source = MODEL.replace("loss = cross_entropy(logits, y)", f"{name} = cross_entropy(logits, y)\n"
                           f"    loss = 2.0 * {name}") % "epochs = 3"
    program = dlc.compile(source=source, seed=0)
    spec = program.spec()
    assert spec.epochs == 3
    x = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1], np.int32)
    plain = dlc.compile(source=MODEL % "", seed=0)
    np.testing.assert_allclose(program.loss_and_grads(x=x, y=y)[0], 2 * plain.loss_and_grads(x=x, y=y)[0],
                               rtol=1e-6)


@pytest.mark.parametrize("line,message", [
    ("early_stoping = early_stopping(patience=3)", "unknown training setting 'early_stoping'; did you mean "
                                                   "'early_stopping'?"),
    ("stop = early_stopping(patience=3)", "did you mean 'early_stopping = early_stopping(...)'?"),
    ("attack = pgd(eps=0.1)", "did you mean 'adversarial = pgd(...)'?"),
    ("lossa = 3", "unknown training setting 'lossa'; did you mean 'loss'?"),
])
def test_a_setting_value_under_a_new_name_is_a_mistyped_setting(line: str, message: str) -> None:
    with pytest.raises(dlc.CompileError, match=re.escape(message)):
        dlc.compile(source=MODEL % line).spec()


def test_an_error_inside_a_term_is_reported_as_itself() -> None:
    with pytest.raises(dlc.CompileError, match="undefined name 'yy'"):
        dlc.compile(source=MODEL % "lossa = cross_entropy(logits, yy)").spec()


@pytest.mark.parametrize("body,message,where", [
    # Regression (issue 27, defect 2): a misspelled loss was "the model declares no loss" with no location.
    ("losstext = cross_entropy(logits, y)", "'losstext' defines a tensor: did you mean 'loss = ...'?", (5, 5)),
    ("ce_loss = cross_entropy(logits, y)", "'ce_loss' defines a tensor: did you mean 'loss = ...'?", (5, 5)),
    ("total = cross_entropy(logits, y)", "the train block declares no loss: add `loss = ...`", (4, 7)),
])
def test_a_missing_loss_is_located_in_the_train_block(body: str, message: str, where: tuple[int, int]) -> None:
    program = dlc.compile(source=MODEL.replace("loss = cross_entropy(logits, y)", body) % "epochs = 2")
    with pytest.raises(dlc.CompileError) as info:
        program.train_step(x=np.zeros((2, 4), np.float32), y=np.zeros(2, np.int32))
    assert message in str(info.value)
    assert (info.value.loc.line, info.value.loc.col) == where


def test_dlc_check_locates_a_missing_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlc.cli import main
    path = tmp_path / "m.dlm"
    path.write_text(MODEL.replace("loss = cross_entropy", "losstext = cross_entropy") % "")
    assert main(["check", str(path)]) == 1
    assert f"{path}:5:5: error: the train block declares no loss; 'losstext'" in capsys.readouterr().err
