"""A dead model never looks alive: a NaN or inf loss or gradient never reaches the parameters (an error naming
the step by default, or a skipped step), fit rejects meaningless arguments, and concurrent train_step calls on
one program are serialized (regressions: one NaN sample turned 512 weights to NaN behind a normal-looking loss;
fit(batch_size=0) silently used 32; two threads x 100 steps left step_count at 100)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import dlc

MODEL = """input x: f32[N, 4]
input y: i32[N]
h = relu(dense(x, 8))
output logits = dense(h, 3)
train {
  loss = cross_entropy(logits, y)
  optimizer = sgd(lr=0.1)
  SETTING
}
"""


def program(setting: str = "") -> dlc.Program:
    return dlc.compile(source=MODEL.replace("SETTING", setting), seed=1)


def batch(n: int = 8, nan_row: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    if nan_row is not None:
        x[nan_row, 0] = np.nan
    return {"x": x, "y": rng.integers(0, 3, n).astype(np.int32)}


def test_nan_sample_stops_training_naming_the_step_and_changes_nothing() -> None:
    p = program()
    p.train_step(**batch())
    params = {k: v.copy() for k, v in p.params.items()}
    with pytest.raises(dlc.NonFiniteError, match="training step 2: the loss is nan"):
        p.train_step(**batch(nan_row=3))
    assert p.step_count == 1
    for k, v in p.params.items():
        np.testing.assert_array_equal(v, params[k])
    p.train_step(**batch())  # training goes on from the unchanged state
    assert p.step_count == 2 and all(np.isfinite(v).all() for v in p.params.values())


def test_non_finite_gradient_with_finite_loss_is_caught() -> None:
    p = program()

    def corrupt(region: np.ndarray) -> None:  # e.g. an allreduce that overflowed
        region[-1] = np.inf

    p.trainer.gradient_hook = corrupt
    with pytest.raises(dlc.NonFiniteError, match="training step 1: the gradient of .* is not finite"):
        p.train_step(**batch())
    assert all(np.isfinite(v).all() for v in p.params.values()) and p.step_count == 0


def test_skip_setting_skips_the_step_and_fit_reports_it() -> None:
    p = program('on_nonfinite = "skip"')
    params = {k: v.copy() for k, v in p.params.items()}
    out = p.train_step(**batch(nan_row=0))
    assert out["skipped"] == 1.0 and p.step_count == 0
    for k, v in p.params.items():
        np.testing.assert_array_equal(v, params[k])
    # fit refuses NaN data before any step (issue 25, item 3), so the non-finite loss comes from finite data
    # that overflows float32 in the forward pass
    data = batch(16)
    data["x"][0] = 3e38
    history = p.fit(data, epochs=1, batch_size=8, shuffle=False, verbose=False)
    assert history["skipped"] == [1.0] and np.isfinite(history["loss"][0]) and p.step_count == 1


def test_unknown_setting_value_is_refused() -> None:
    with pytest.raises(ValueError, match="on_nonfinite"):
        program().configure(on_nonfinite="ignore")


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -5}, {"epochs": -1}, {"batch_size": 2.5},
                                    {"epochs": True}])
def test_fit_rejects_meaningless_arguments(kwargs: dict) -> None:
    p = program()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        p.fit(batch(), verbose=False, **kwargs)
    assert p.step_count == 0


def test_evaluate_rejects_batch_size_zero() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        program().evaluate(batch(), batch_size=0)


def test_concurrent_train_steps_are_serialized() -> None:
    p = program()
    b = batch()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(25):
            p.train_step(**b)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert p.step_count == 100
    q = program()
    for _ in range(100):
        q.train_step(**b)
    for k, v in p.params.items():  # the same 100 updates, whatever the interleaving
        np.testing.assert_allclose(v, q.params[k], rtol=1e-6, atol=1e-7)


def _resave(path, edit) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save_file
    from dlc.training.checkpoint import _digest
    with safe_open(str(path), framework="np") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    edit(tensors, meta)
    meta["sha256"] = _digest(tensors)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("edit", [
    lambda t, m: t.__setitem__(next(k for k in t if k.startswith("opt/")), np.zeros(3, np.float32)),
    lambda t, m: t.__setitem__("opt/nope/sgd.m", np.zeros(3, np.float32)),
    lambda t, m: m.__setitem__("step", "-4"),
])
def test_checkpoint_with_foreign_optimizer_state_or_counters_changes_nothing(tmp_path, edit) -> None:
    # Regression: optimizer state of any shape was taken into a fresh trainer, whose plans then addressed it.
    p = dlc.compile(source=MODEL.replace("SETTING", "optimizer = adam(lr=0.01)"), seed=1)
    p.train_step(**batch())
    path = tmp_path / "c.ckpt"
    p.save_checkpoint(str(path))
    _resave(path, edit)
    fresh = program()
    before = {k: v.copy() for k, v in fresh.params.items()}
    with pytest.raises(dlc.CheckpointError):
        fresh.load_checkpoint(str(path))
    for k, v in fresh.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_checkpoint_save_removes_temporaries_a_killed_writer_left(tmp_path) -> None:
    import os
    import time
    path = tmp_path / "c.ckpt"
    stale = tmp_path / ".c.ckpt.abc123.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600,) * 2)
    program().save_checkpoint(str(path))
    assert not stale.exists() and path.exists()
