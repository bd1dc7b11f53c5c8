"""Batch normalization in training graphs: a layer called twice (`share=`) trains, each call moving the
running statistics in program order as PyTorch's module does (issue 26 item 1: fusion built a cycle between
the two calls' in-place updates)."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

SHARED_BN = """
input a: f32[N, 4]
input b: f32[N, 4]
ha = batch_norm(a, name="bn")
hb = batch_norm(b, share="bn")
output ha, hb
train {
    loss = sum(ha * ha) + sum(hb * hb)
}
"""


def _batches() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal((6, 4)).astype(np.float32),
            "b": (2.0 + 3.0 * rng.standard_normal((6, 4))).astype(np.float32)}


def _running_after(calls: list[np.ndarray], momentum: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """torch.nn.BatchNorm1d's running statistics after training-mode calls in this order."""
    mean, var = np.zeros(4), np.ones(4)
    for x in calls:
        xd = x.astype(np.float64)
        mean = (1 - momentum) * mean + momentum * xd.mean(0)
        var = (1 - momentum) * var + momentum * xd.var(0, ddof=1)
    return mean, var


@pytest.mark.parametrize("fuse", [True, False])
def test_shared_batch_norm_trains_and_moves_statistics_in_call_order(fuse: bool) -> None:
    batch = _batches()
    program = dlc.compile(source=SHARED_BN, fuse=fuse)
    stats = program.train_step(**batch)
    assert np.isfinite(stats["loss"])
    mean, var = _running_after([batch["a"], batch["b"]])
    np.testing.assert_allclose(program.params["bn.running_mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(program.params["bn.running_var"], var, rtol=1e-5)


def test_shared_batch_norm_fused_equals_unfused_in_every_training_entry_point() -> None:
    batch = _batches()
    fused, plain = dlc.compile(source=SHARED_BN), dlc.compile(source=SHARED_BN, fuse=False)
    loss_f, grads_f = fused.loss_and_grads(**batch)
    loss_p, grads_p = plain.loss_and_grads(**batch)
    np.testing.assert_allclose(loss_f, loss_p, rtol=1e-6)
    assert set(grads_f) == {"bn.weight", "bn.bias"}
    for name in grads_p:
        np.testing.assert_allclose(grads_f[name], grads_p[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # sum(y^2) over a normalized batch is N * C * var / (var + eps) per layer call: d/dbias = 2 sum(y) = 0
    np.testing.assert_allclose(grads_f["bn.bias"], 0.0, atol=1e-4)
    for program in (fused, plain):
        program.train()
        out = program(**batch)
        np.testing.assert_allclose(out["hb"].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(fused.params["bn.running_mean"], plain.params["bn.running_mean"], rtol=1e-6)
    assert fused.train_step(**batch)["loss"] == pytest.approx(plain.train_step(**batch)["loss"], rel=1e-6)


# Issue 26, item 2: a step runs what its loss and metrics need; batch norm moves its running statistics only
# for the calls on that path (a PyTorch module the step never calls never updates them).

PHASES = """
input a: f32[N, 4]
input b: f32[N, 4]
ha = batch_norm(a, name="bn")
output hb = dense(b, 3, name="fc")
output ha
train {
    bn_term = sum(ha * ha)
    fc_term = sum(hb * hb)
    phases = [
        phase("p1", loss=bn_term, params=["bn"], optimizer=sgd(lr=0.1)),
        phase("p2", loss=fc_term, params=["fc"], optimizer=sgd(lr=0.1)),
    ]
}
"""


def test_a_phase_moves_only_the_statistics_of_the_layers_its_loss_reads() -> None:
    batch = _batches()
    program = dlc.compile(source=PHASES)
    assert program.current_phase == "p1"
    program.train_step(**batch)
    mean, var = _running_after([batch["a"]])
    np.testing.assert_allclose(program.params["bn.running_mean"], mean, rtol=1e-5, atol=1e-6)
    fc_before = program.params["fc.weight"].copy()
    assert program.current_phase == "p2"
    program.train_step(**batch)
    np.testing.assert_allclose(program.params["bn.running_mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(program.params["bn.running_var"], var, rtol=1e-5)
    assert not np.array_equal(program.params["fc.weight"], fc_before)  # p2 did train


def test_a_phase_needs_only_the_inputs_its_loss_reads() -> None:
    batch = _batches()
    program = dlc.compile(source=PHASES)
    program.train_step(**batch)
    program.train_step(b=batch["b"])  # p2 reads no `a`
    with pytest.raises(ValueError, match="missing input 'a'"):
        program.train_step(b=batch["b"])  # p1 does


SINGLE_LOSS = """
input a: f32[N, 4]
input b: f32[N, 4]
input y: i32[N]
output side = batch_norm(a, name="side")
output logits = dense(batch_norm(b, name="main"), 3, name="fc")
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
}
"""


@pytest.mark.parametrize("fuse", [True, False])
def test_a_single_loss_step_leaves_an_output_branch_it_does_not_use(fuse: bool) -> None:
    batch = {**_batches(), "y": np.array([0, 1, 2, 0, 1, 2], np.int32)}
    program = dlc.compile(source=SINGLE_LOSS, fuse=fuse)
    program.train_step(**batch)
    loss, _ = program.loss_and_grads(**batch)
    assert np.isfinite(loss)
    mean, _ = _running_after([batch["b"], batch["b"]])  # the step and loss_and_grads each call `main`
    np.testing.assert_allclose(program.params["main.running_mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(program.params["side.running_mean"], np.zeros(4, np.float32))
    np.testing.assert_array_equal(program.params["side.running_var"], np.ones(4, np.float32))
    program.train()  # a plain call in training mode computes every declared output: both layers move
    program(**batch)
    np.testing.assert_allclose(program.params["side.running_mean"], _running_after([batch["a"]])[0], rtol=1e-5,
                               atol=1e-6)
