"""A phase's step is the split step every recipe runs (issue 26, item 7): the non-finite guard before the
update, and the gradient hook (so data-parallel training, tests/test_distributed.py) between the two plans."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from test_phases import TWO_PHASES, _batch, _snapshot


def test_the_gradient_hook_sees_each_phases_own_region_and_changes_nothing_as_identity() -> None:
    plain, hooked = dlc.compile(source=TWO_PHASES, seed=0), dlc.compile(source=TWO_PHASES, seed=0)
    seen: list[tuple[str, list[str], int]] = []

    def hook(region: np.ndarray) -> None:
        seen.append((hooked.current_phase, sorted(hooked.trainer.gradient_views), region.size))

    hooked.trainer.gradient_hook = hook
    for k in range(5):
        batch = _batch(k)
        assert hooked.train_step(**batch) == plain.train_step(**batch)
    for name, value in _snapshot(plain).items():
        np.testing.assert_array_equal(hooked.params[name], value, err_msg=name)
    head, body = (["b.bias", "b.weight"], 10), (["a.bias", "a.weight"], 16)
    assert [(p, names, size) for p, names, size in seen] == [
        ("head", *head), ("head", *head), ("body", *body), ("head", *head), ("head", *head)]


def test_a_hook_that_scales_the_phases_gradients_scales_its_update() -> None:
    program = dlc.compile(source=TWO_PHASES, seed=0)
    before = _snapshot(program)
    program.trainer.gradient_hook = lambda region: region.__imul__(0.0)  # sgd with momentum: no movement
    program.train_step(**_batch())
    for name, value in before.items():
        np.testing.assert_array_equal(program.params[name], value, err_msg=name)
    assert program.step_count == 1 and program.current_phase == "head"


NAN_IN_BODY = TWO_PHASES.replace("fit + 0.1 * mean(a * a)", "fit + 0.1 * mean(log(a))")  # log of tanh < 0: NaN


def test_a_non_finite_phase_loss_never_reaches_the_parameters() -> None:
    program = dlc.compile(source=NAN_IN_BODY, seed=0)
    program.train_step(**_batch(0))
    program.train_step(**_batch(1))
    assert program.current_phase == "body"
    before, opt = _snapshot(program), {k: v.copy() for k, v in program.trainer.optimizer_state.items()}
    with pytest.raises(dlc.NonFiniteError, match=r"training step 3 \(phase body\): the loss is nan"):
        program.train_step(**_batch(2))
    for name, value in before.items():
        np.testing.assert_array_equal(program.params[name], value, err_msg=name)
    for name, value in opt.items():
        np.testing.assert_array_equal(program.trainer.optimizer_state[name], value, err_msg=name)
    assert program.step_count == 2


def test_skip_leaves_a_non_finite_phase_step_out() -> None:
    program = dlc.compile(source=NAN_IN_BODY.replace("batch_size = 4", 'batch_size = 4\n    on_nonfinite = "skip"'),
                          seed=0)
    program.train_step(**_batch(0))
    program.train_step(**_batch(1))
    before = _snapshot(program)
    result = program.train_step(**_batch(2))
    assert result["skipped"] == 1.0 and np.isnan(result["body.loss"])
    assert program.step_count == 2 and program.current_phase == "body"
    for name, value in before.items():
        np.testing.assert_array_equal(program.params[name], value, err_msg=name)


def test_a_non_finite_phase_gradient_is_caught_too() -> None:
    # sqrt'(0) is infinite while sqrt(0) is not: the loss is finite, a gradient is not.
    source = TWO_PHASES.replace("fit + 0.1 * mean(a * a)", "fit + 0.1 * mean(sqrt(a * a * 0.0))")
    program = dlc.compile(source=source, seed=0)
    program.train_step(**_batch(0))
    program.train_step(**_batch(1))
    with pytest.raises(dlc.NonFiniteError, match=r"\(phase body\): the gradient of a\.(bias|weight)"):
        program.train_step(**_batch(2))
