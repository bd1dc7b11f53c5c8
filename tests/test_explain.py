"""Evaluation-mode gradients (dropout off, batch norm on running statistics) against finite differences, and
saliency maps (vanilla and SmoothGrad) from them."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.explain import saliency

NET = """
input x: f32[N, 1, 4, 4]
input y: i32[N]
c = conv2d(x, 2, padding=1) |> batch_norm |> tanh |> dropout(0.5)
h = dense(flatten(c), 5) |> tanh |> dropout(0.5)
output logits = dense(h, 3)
train {
    loss = cross_entropy(logits, y)
    input_grads = [x]
}
"""


def _program() -> dlc.Program:
    program = dlc.compile(source=NET, dtype="f64", seed=0)
    rng = np.random.default_rng(5)
    # Running statistics that are not the initial (0, 1), so using them is visible.
    program.set_params({"c.batch_norm.running_mean": rng.uniform(-0.3, 0.3, 2),
                        "c.batch_norm.running_var": rng.uniform(0.5, 2.0, 2)})
    return program


def _batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.uniform(0, 1, (3, 1, 4, 4)), "y": np.array([0, 2, 1], np.int32)}


def test_eval_mode_gradients_match_finite_differences() -> None:
    program = _program()
    batch = _batch()
    loss, grads = program.loss_and_grads(mode="eval", **batch)
    assert loss == pytest.approx(program.evaluate_batch(**batch)["loss"], rel=1e-13)
    eps = 1e-6

    def numeric(name: str, value: np.ndarray, set_value) -> np.ndarray:
        out = np.zeros_like(value)
        for j in range(value.size):
            for sign in (1, -1):
                shifted = value.copy()
                shifted.reshape(-1)[j] += sign * eps
                out.reshape(-1)[j] += sign * set_value(shifted) / (2 * eps)
        set_value(value)
        return out

    x = batch["x"]
    fd_x = numeric("x", x, lambda v: program.evaluate_batch(**{**batch, "x": v})["loss"])
    np.testing.assert_allclose(grads["x"], fd_x, rtol=1e-7, atol=1e-10)
    for name in ("c.conv2d.weight", "c.batch_norm.weight", "h.dense.weight"):
        value = np.array(program.params[name])

        def at(v: np.ndarray, name: str = name) -> float:
            program.set_params({name: v})
            return program.evaluate_batch(**batch)["loss"]
        np.testing.assert_allclose(grads[name], numeric(name, value, at), rtol=1e-7, atol=1e-10, err_msg=name)


def test_eval_mode_differs_from_training_mode() -> None:
    program = _program()
    _, train_grads = program.loss_and_grads(**_batch())
    _, eval_grads = program.loss_and_grads(mode="eval", **_batch())
    assert not np.allclose(train_grads["x"], eval_grads["x"])
    with pytest.raises(ValueError, match="mode"):
        program.loss_and_grads(mode="test", **_batch())


def test_saliency_is_the_gradient_of_the_target_score() -> None:
    program = _program()
    x = _batch()["x"]
    got = saliency(program, {"x": x}, target=2)
    eps = 1e-6
    fd = np.zeros_like(x)
    for j in range(x.size):
        for sign in (1, -1):
            shifted = x.copy()
            shifted.reshape(-1)[j] += sign * eps
            fd.reshape(-1)[j] += sign * program(x=shifted)["logits"][:, 2].sum() / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-10)
    per_row = saliency(program, x, target=[2, 0, 1])  # one target per row; a bare array is the image input
    np.testing.assert_allclose(per_row[0], got[0], rtol=1e-12)


def test_smoothgrad_averages_noisy_gradients() -> None:
    program = _program()
    x = _batch()["x"]
    smooth = saliency(program, {"x": x}, target=1, method="smoothgrad", samples=8, noise=0.1, seed=3)
    rng = np.random.default_rng(3)
    sigma = 0.1 * (x.max() - x.min())
    expected = np.mean([saliency(program, {"x": x + rng.normal(0, sigma, x.shape)}, target=1)
                        for _ in range(8)], axis=0)
    np.testing.assert_allclose(smooth, expected, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="method"):
        saliency(program, {"x": x}, target=1, method="integrated")
    with pytest.raises(ValueError, match="target"):
        saliency(program, {"x": x}, target=7)
