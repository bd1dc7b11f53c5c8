"""Adversarial examples in the compiled graph: FGSM and PGD against a NumPy reference of the same formulas,
clean fractions, robust evaluation, and one adversarial training step against its reference update."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

LINEAR = """
input x: f32[N, 4]
input y: i32[N]
param W: f32[4, 3] = normal(std=0.8)
output logits = x @ W
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = sgd(lr=0.5)
}
"""


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (6, 4)), rng.integers(0, 3, 6).astype(np.int32)


def _probs(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = x @ w
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loss(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return float(-np.mean(np.log(_probs(x, w)[np.arange(len(y)), y])))


def _dlogits(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    p = _probs(x, w)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def _fgsm(x: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return np.clip(x + eps * np.sign(_dlogits(x, y, w) @ w.T), 0, 1)


def _pgd(x: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float, steps: int, alpha: float,
         clip: bool = True) -> np.ndarray:
    xt = x.copy()
    for _ in range(steps):
        xt = np.clip(xt + alpha * np.sign(_dlogits(xt, y, w) @ w.T), x - eps, x + eps)
        xt = np.clip(xt, 0, 1) if clip else xt
    return xt


@pytest.fixture
def program() -> dlc.Program:
    return dlc.compile(source=LINEAR, dtype="f64", seed=0)


def test_fgsm_matches_reference(program: dlc.Program) -> None:
    x, y = _batch()
    w = np.array(program.params["W"])
    got = program.adversarial_examples(("fgsm", {"eps": 0.1, "clip": [0, 1]}), x=x, y=y)
    np.testing.assert_allclose(got, _fgsm(x, y, w, 0.1), rtol=0, atol=1e-15)
    assert not np.array_equal(got, x)


def test_pgd_matches_reference(program: dlc.Program) -> None:
    x, y = _batch()
    w = np.array(program.params["W"])
    attack = ("pgd", {"eps": 0.1, "steps": 4, "step_size": 0.04, "clip": [0, 1], "random_start": False})
    got = program.adversarial_examples(attack, x=x, y=y)
    np.testing.assert_allclose(got, _pgd(x, y, w, 0.1, 4, 0.04), rtol=0, atol=1e-15)
    assert np.max(np.abs(got - x)) <= 0.1 + 1e-15
    # The default step size is Madry et al.'s 2.5 eps / steps.
    got = program.adversarial_examples(("pgd", {"eps": 0.1, "steps": 5, "random_start": False}), x=x, y=y)
    np.testing.assert_allclose(got, _pgd(x, y, w, 0.1, 5, 0.05, clip=False), rtol=0, atol=1e-15)


def test_clean_fraction_keeps_leading_rows(program: dlc.Program) -> None:
    x, y = _batch()
    got = program.adversarial_examples(("fgsm", {"eps": 0.05, "clean_fraction": 0.5}), x=x, y=y)
    np.testing.assert_array_equal(got[:3], x[:3])
    assert np.all(np.abs(got[3:] - x[3:]) > 0)


def test_robust_evaluation_is_the_loss_at_the_attacked_input(program: dlc.Program) -> None:
    x, y = _batch()
    w = np.array(program.params["W"])
    robust = program.evaluate((x, y), attack=("fgsm", {"eps": 0.2, "clip": [0, 1]}))
    assert robust["loss"] == pytest.approx(_loss(_fgsm(x, y, w, 0.2), y, w), rel=1e-12)
    clean = program.evaluate((x, y))
    assert clean["loss"] == pytest.approx(_loss(x, y, w), rel=1e-12)
    assert robust["loss"] > clean["loss"]


def test_adversarial_training_step_matches_reference(program: dlc.Program) -> None:
    x, y = _batch()
    w = np.array(program.params["W"])
    program.configure(adversarial=("fgsm", {"eps": 0.1, "clip": [0, 1], "clean_fraction": 0.5}))
    stats = program.train_step(x=x, y=y)
    x_train = np.concatenate([x[:3], _fgsm(x, y, w, 0.1)[3:]])
    assert stats["loss"] == pytest.approx(_loss(x_train, y, w), rel=1e-12)
    expected = w - 0.5 * x_train.T @ _dlogits(x_train, y, w)
    np.testing.assert_allclose(program.params["W"], expected, rtol=1e-12)


def test_recipe_declares_the_attack() -> None:
    source = LINEAR.replace("optimizer = sgd(lr=0.5)", "optimizer = sgd(lr=0.5)\n    adversarial = pgd(eps=0.1, steps=2, clip=[0, 1])")
    program = dlc.compile(source=source, dtype="f64")
    assert program.spec().adversarial.method == "pgd" and program.spec().adversarial.steps == 2
    with pytest.raises(dlc.CompileError, match="pgd takes no argument 'epsilon'"):
        dlc.compile(source=source.replace("eps=", "epsilon="), dtype="f64").spec()


def test_pgd_starts_at_a_uniform_draw_in_the_ball(program: dlc.Program) -> None:
    # Issue 26, item 7: Madry et al.'s random start, on by default. One step of negligible size leaves the
    # start itself: spread uniformly over [-eps, eps], the same draw for the same step, a new one next step.
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (2000, 4)), rng.integers(0, 3, 2000).astype(np.int32)
    attack = ("pgd", {"eps": 0.1, "steps": 1, "step_size": 1e-9})
    got = program.adversarial_examples(attack, x=x, y=y)
    delta = got - x
    assert np.max(np.abs(delta)) <= 0.1 + 1e-9
    assert abs(np.mean(delta)) < 0.005 and abs(np.mean(np.abs(delta)) - 0.05) < 0.003  # U(-0.1, 0.1)
    deciles = np.histogram(delta, bins=10, range=(-0.1, 0.1))[0] / delta.size
    np.testing.assert_allclose(deciles, 0.1, atol=0.015)
    np.testing.assert_array_equal(program.adversarial_examples(attack, x=x, y=y), got)
    program.train_step(x=x, y=y)
    assert not np.array_equal(program.adversarial_examples(attack, x=x, y=y), got)


def test_pgd_random_start_respects_the_ball_and_the_clip(program: dlc.Program) -> None:
    x, y = _batch()
    w = np.array(program.params["W"])
    attack = {"eps": 0.1, "steps": 4, "step_size": 0.04, "clip": [0, 1]}
    got = program.adversarial_examples(("pgd", attack), x=x, y=y)
    assert np.max(np.abs(got - x)) <= 0.1 + 1e-15 and got.min() >= 0 and got.max() <= 1
    assert not np.allclose(got, _pgd(x, y, w, 0.1, 4, 0.04))  # it did not start at x
    assert program.evaluate((x, y), attack=("pgd", attack))["loss"] > program.evaluate((x, y))["loss"]
    with pytest.raises(ValueError, match="random_start is true or false"):
        program.adversarial_examples(("pgd", {"eps": 0.1, "random_start": 1}), x=x, y=y)
