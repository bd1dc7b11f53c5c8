"""Dropout with frozen layers (issue 14). Freezing does not change dropout's mask or salt: the mask at step s is
the same in a training-mode call, in loss_and_grads with nothing frozen and with everything frozen. What
freezing changes is the dropout's *input* when batch norm comes before it: a frozen batch norm normalizes with
its running statistics (evaluation form), a training-mode call with the batch's statistics. That is the
difference reported for a VGG-style CNN (a dense-only model has no batch norm, so it showed none)."""

from __future__ import annotations

import numpy as np

import dlc

MODEL = """
input x: f64[N, 6]
d = dropout(x, 0.5)
output c = dense(d, 3) |> batch_norm
train {
    loss = sum(c * c)
    input_grads = [x]
}
"""


def _x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.5, 1.5, (8, 6))


def _mask_from_call(program: dlc.Program, x: np.ndarray) -> np.ndarray:
    """The kept elements at the program's current step, read from a training-mode call of `x -> dropout`."""
    probe = dlc.compile(source="input x: f64[N, 6]\noutput d = dropout(x, 0.5)\n", seed=program.seed)
    # Both dropouts are the first of their model, so they get the same salt; the step seeds the masks.
    plan = probe.compile_plan({"N": len(x)}, training=True)
    return probe.run_plan(plan, {"x": x}, step=program.step_count, training=True)["d"] != 0


def test_freezing_keeps_the_mask() -> None:
    x = _x()
    free = dlc.compile(source=MODEL, seed=3)
    frozen = dlc.compile(source=MODEL, seed=3).freeze("c")
    expected = _mask_from_call(free, x)
    assert 0 < expected.sum() < expected.size
    for program in (free, frozen):
        _, grads = program.loss_and_grads(x=x)
        np.testing.assert_array_equal(grads["x"] != 0, expected)
    # One optimizer step later both use the next step's mask (and it is a different one).
    free.train_step(x=x)
    frozen.train_step(x=x)
    later = _mask_from_call(free, x)
    assert not np.array_equal(later, expected)
    for program in (free, frozen):
        _, grads = program.loss_and_grads(x=x)
        np.testing.assert_array_equal(grads["x"] != 0, later)


def test_frozen_batch_norm_before_dropout_uses_running_statistics() -> None:
    """With batch norm frozen, loss_and_grads equals the loss of (mask * x / keep) through dense and batch norm
    in evaluation form; batch statistics would give a different value."""
    x = _x()
    program = dlc.compile(source=MODEL, seed=3).freeze("c")
    mask = _mask_from_call(program, x)
    loss, _ = program.loss_and_grads(x=x)
    p = program.params
    z = (x * mask / 0.5) @ p["c.dense.weight"] + p["c.dense.bias"]
    running = (z - p["c.batch_norm.running_mean"]) / np.sqrt(p["c.batch_norm.running_var"] + 1e-5)
    assert np.isclose(loss, np.sum(running ** 2), rtol=1e-12)
    batch = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
    assert not np.isclose(loss, np.sum(batch ** 2), rtol=1e-3)
