"""The fused training step's non-finite guard (issue 27): train_step is one plan whose optimizer kernel checks
the loss and every gradient before writing anything. A NaN or inf leaves parameters, optimizer state and the
step count bit-identical for every optimizer, names the parameters whose gradients are not finite, survives
gradient clipping (a clamped inf is still an inf), and a finite step is bit-identical to the same plan built
without the guard and to the split two-plan step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlc
from dlc.training.step import HYPER

# Two branches, so a gradient can be non-finite in one of them only: sqrt(|a - y|) has an infinite slope
# where a == y, while the loss stays finite.
MODEL = """input x: f32[N, 4]
input y: f32[N, 2]
output a = dense(x, 2)
output b = dense(relu(dense(x, 8)), 2)
train {
  loss = mean(sqrt(abs(a - y))) + mean(square(b - y))
  optimizer = sgd(lr=0.1)
  SETTING
}
"""

OPTIMIZERS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", {"lr": 0.01}),
    ("adamw", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
]


def program(setting: str = "", dtype: str | None = None, **overrides: Any) -> dlc.Program:
    p = dlc.compile(source=MODEL.replace("SETTING", setting), seed=1, **({"dtype": dtype} if dtype else {}))
    if overrides:
        p.configure(**overrides)
    return p


def batch(seed: int = 0, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((8, 4)).astype(dtype), "y": rng.standard_normal((8, 2)).astype(dtype)}


def nan_loss_batch() -> dict[str, np.ndarray]:
    data = batch(5)
    data["y"][3, 1] = np.nan
    return data


def nan_gradient_batch(p: dlc.Program) -> dict[str, np.ndarray]:
    """A finite loss whose gradient is NaN in branch `a` only (a == y at one element)."""
    data = batch(6)
    data["y"][2] = p(x=data["x"])["a"][2]
    return data


def state(p: dlc.Program) -> dict[str, np.ndarray]:
    return {**{k: v.copy() for k, v in p.params.items()}, **{k: v.copy() for k, v in p.optimizer_state.items()}}


def assert_same(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> None:
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].tobytes() == after[k].tobytes(), k


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: f"{o[0]}-{'-'.join(map(str, o[1]))}")
def test_a_non_finite_step_leaves_parameters_and_optimizer_state_bit_identical(optimizer: Any) -> None:
    p = program(optimizer=optimizer)
    for k in range(2):  # optimizer state is not zero any more
        p.train_step(**batch(k))
    before = state(p)
    with pytest.raises(dlc.NonFiniteError, match=r"training step 3: the loss is nan; the update was not applied"):
        p.train_step(**nan_loss_batch())
    with pytest.raises(dlc.NonFiniteError,
                       match=r"training step 3: the gradient of a\.weight, a\.bias is not finite"):
        p.train_step(**nan_gradient_batch(p))
    assert p.step_count == 2
    assert_same(before, state(p))


def test_a_skipped_step_is_not_counted_as_pytorchs_grad_scaler_skips_optimizer_step() -> None:
    """Adam's bias correction, the schedule and dropout seeds follow the steps taken: after a skipped step
    the next finite one is the one a run without the bad batch would have taken, bit for bit."""
    p = program('on_nonfinite = "skip"', optimizer=("adam", {"lr": 0.01}))
    q = program('on_nonfinite = "skip"', optimizer=("adam", {"lr": 0.01}))
    p.train_step(**batch(0))
    q.train_step(**batch(0))
    out = p.train_step(**nan_gradient_batch(p))
    assert out["skipped"] == 1.0 and "lr" not in out and np.isfinite(out["loss"]) and p.step_count == 1
    assert_same(state(q), state(p))
    p.train_step(**batch(1))
    q.train_step(**batch(1))
    assert p.step_count == q.step_count == 2
    assert_same(state(q), state(p))


@pytest.mark.parametrize("clip", [{"clip_norm": 1.0}, {"clip_value": 0.5}, {"clip_norm": 1.0, "clip_value": 0.5}])
def test_clipping_does_not_hide_a_non_finite_gradient(clip: dict[str, float]) -> None:
    p = program(optimizer=("adam", {"lr": 0.01}), **clip)
    p.train_step(**batch(0))
    before = state(p)
    data = batch(1)
    data["x"][0, 0] = 3e38  # finite input, an overflow in the forward pass
    with pytest.raises(dlc.NonFiniteError, match=r"the loss is inf"):
        p.train_step(**data)
    with pytest.raises(dlc.NonFiniteError, match=r"the gradient of a\.weight, a\.bias is not finite"):
        p.train_step(**nan_gradient_batch(p))
    assert_same(before, state(p))


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("clip", [{}, {"clip_value": 0.5}, {"clip_norm": 1.0, "clip_value": 0.5}])
def test_an_infinite_gradient_under_a_finite_loss_is_caught_even_where_clip_value_clamps_it(
        dtype: str, clip: dict[str, float]) -> None:
    """sqrt(a - y) where a == y: the loss is finite, the slope +inf; clamping to +-0.5 would make it finite."""
    src = f"""input x: {dtype}[N, 4]
input y: {dtype}[N, 1]
output a = dense(x, 1)
train {{
  loss = mean(sqrt(a - y))
  optimizer = sgd(lr=0.1)
}}
"""
    p = dlc.compile(source=src, seed=1)
    p.configure(**clip)
    p.trainer.training_plan("step", {"N": 4})  # its optimizer state exists (zeros) from here on
    before = state(p)
    x = np.random.default_rng(0).standard_normal((4, 4)).astype(dtype.replace("f", "float"))
    y = p(x=x)["a"] - 1.0
    y[0] += 1.0  # a - y == 0 exactly there
    with pytest.raises(dlc.NonFiniteError, match=r"training step 1: the gradient of a\.weight, a\.bias is not "):
        p.train_step(x=x, y=y)
    assert_same(before, state(p))
    assert np.isposinf(p.loss_and_grads(x=x, y=y)[1]["a.bias"]).all()


def unguarded_step(p: dlc.Program, data: dict[str, np.ndarray]) -> None:
    """The fused step plan built without the guard, run as train_step runs the guarded one."""
    t = p.trainer
    arrays, binding = t._prepare(data)
    lowered, tg = t.training_plan("step", binding, guard=False)
    _, hyper = t._hyper(tg.spec, 1.0)
    p.model.run_plan(lowered, {**arrays, HYPER: hyper}, step=t.step_count + 1, training=True)
    t._step += 1


@pytest.mark.parametrize("optimizer, extra", [(("adam", {"lr": 0.01}), {}), (("sgd", {"momentum": 0.9}), {}),
                                              (("rmsprop", {"lr": 0.01}), {"clip_norm": 0.1, "clip_value": 0.2})])
def test_a_finite_step_is_bit_identical_to_the_unguarded_and_the_split_step(optimizer: Any, extra: dict) -> None:
    guarded, plain, split = (program(optimizer=optimizer, **extra) for _ in range(3))
    split.trainer.gradient_hook = lambda region: None  # a hook: the two-plan step
    for k in range(3):
        guarded.train_step(**batch(k))
        unguarded_step(plain, batch(k))
        split.train_step(**batch(k))
    assert_same(state(plain), state(guarded))
    assert_same(state(split), state(guarded))
    assert guarded.step_count == plain.trainer.step_count == split.step_count == 3


def test_f64_gradients_whose_squares_overflow_are_finite_under_clip_norm() -> None:
    """The global norm of finite f64 gradients near 1e200 overflows; the guard confirms them with a scan."""
    src = """input x: f64[N, 2]
output o = dense(x, 1)
train {
  loss = mean(o)
  optimizer = sgd(lr=0.1)
  clip_norm = 1.0
}
"""
    p = dlc.compile(source=src, seed=1)
    p.train_step(x=np.full((4, 2), 1e200))
    assert p.step_count == 1 and all(np.isfinite(v).all() for v in p.params.values())


def test_the_step_plan_is_guarded_and_reports_the_gradients_in_parameter_order() -> None:
    p = program()
    lowered, tg = p.trainer.training_plan("step", {"N": 8})
    data = nan_gradient_batch(p)
    arrays, _ = p.trainer._prepare(data)
    _, hyper = p.trainer._hyper(tg.spec, 1.0)
    out = p.model.run_plan(lowered, {**arrays, HYPER: hyper}, step=1, training=True)
    flags = dict(zip(["loss"] + tg.trainable, out["__nonfinite__"].tolist()))
    assert flags == {"loss": 0, "a.weight": 1, "a.bias": 1, "b.dense.weight": 0, "b.dense.bias": 0,
                     "b.dense_1.weight": 0, "b.dense_1.bias": 0}
