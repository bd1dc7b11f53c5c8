"""The training API by composition: a `Trainer` holds a `CompiledModel`; several trainers share one model's
parameters; a step splits into compute_gradients / gradient_hook / apply_gradients with the same result as
the fused step."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.errors import DlcError

MODEL = """
input x: f32[N, 8]
input y: i32[N]
h = dense(x, 16) |> relu
d = dropout(h, 0.25)
output logits = dense(d, 4)
train {
    loss = cross_entropy(logits, y)
    optimizer = adam(lr=0.01)
    clip_norm = 1.0
    metrics = [accuracy(logits, y)]
}
"""


def _data(n: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 8)).astype(np.float32), "y": rng.integers(0, 4, n).astype(np.int32)}


def test_program_delegates_to_a_trainer_over_its_model() -> None:
    p = dlc.compile(source=MODEL)
    assert isinstance(p.trainer, dlc.Trainer) and isinstance(p.model, dlc.CompiledModel)
    assert p.trainer.model is p.model
    p.train_step(**_data())
    assert p.step_count == p.trainer.step_count == 1
    assert p.configure(epochs=3) is p and p.trainer.spec().epochs == 3


def test_two_trainers_share_the_parameters_but_not_the_optimizer() -> None:
    p = dlc.compile(source=MODEL)
    other = dlc.Trainer(p.model, optimizer=("sgd", {"lr": 0.1}))
    before = p.params["logits.weight"].copy()
    other.train_step(**_data())
    after_other = p.params["logits.weight"].copy()
    assert not np.array_equal(before, after_other)  # the program sees the other trainer's update
    assert other.step_count == 1 and p.step_count == 0
    p.train_step(**_data(seed=1))
    assert not np.array_equal(after_other, p.params["logits.weight"])
    assert any("adam" in k for k in p.optimizer_state) and not any("adam" in k for k in other.optimizer_state)


def test_split_step_with_a_hook_matches_the_fused_step() -> None:
    fused, split = dlc.compile(source=MODEL, seed=3), dlc.compile(source=MODEL, seed=3)
    seen: list[tuple[int, bool]] = []
    split.trainer.gradient_hook = lambda g: seen.append((g.size, g.flags.c_contiguous))
    for k in range(3):
        batch = _data(seed=k)
        a, b = fused.train_step(**batch), split.train_step(**batch)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5)
    total = sum(v.size for v in split.params.values())
    assert seen == [(total, True)] * 3
    for name in fused.params:
        np.testing.assert_allclose(fused.params[name], split.params[name], rtol=1e-5, atol=1e-6)
    assert split.step_count == 3


def test_gradient_region_holds_the_gradients_and_the_hook_can_change_them() -> None:
    p = dlc.compile(source=MODEL.replace("dropout(h, 0.25)", "h"))
    batch = _data()
    _, grads = p.loss_and_grads(**batch)
    t = p.trainer
    with pytest.raises(DlcError, match="no gradients yet"):
        t.gradients
    t.compute_gradients(**batch)
    for name, view in t.gradient_views.items():
        np.testing.assert_allclose(view, grads[name], rtol=1e-5, atol=1e-7)
        assert np.shares_memory(view, t.gradients)
    before = {k: v.copy() for k, v in p.params.items()}
    t.gradients[:] = 0.0  # a hook that zeroes the gradients: Adam's first step then moves nothing
    t.apply_gradients()
    assert t.step_count == 1
    for name, value in before.items():
        np.testing.assert_array_equal(p.params[name], value)
