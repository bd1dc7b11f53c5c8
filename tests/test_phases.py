"""Training phases: each phase updates only its own parameters, phases alternate in declared order and step
counts, a checkpoint taken mid-round resumes bit-identically, and the GAN file trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc

MODELS = Path(__file__).resolve().parent.parent / "models"

TWO_PHASES = """
input x: f32[N, 3]
input y: f32[N, 2]
a = dense(x, 4, name="a") |> tanh
b = dense(a + normal(like=a, std=0.1), 2, name="b")
output out = b
train {
    fit = mse(b, y)
    phases = [
        phase("head", loss=fit, params=["b"], optimizer=sgd(lr=0.1, momentum=0.9), steps=2),
        phase("body", loss=fit + 0.1 * mean(a * a), params=["a.*"], optimizer=adam(lr=0.01),
              schedule=cosine(steps=10)),
    ]
    batch_size = 4
}
"""


def _batch(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(6, 3)).astype(np.float32), "y": rng.normal(size=(6, 2)).astype(np.float32)}


def _snapshot(program: dlc.Program) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in program.params.items()}


def test_each_phase_updates_only_its_parameters() -> None:
    p = dlc.compile(source=TWO_PHASES, seed=1)
    batch = _batch()
    for expected in ("head", "head", "body"):
        before = _snapshot(p)
        stats = p.train_step(**batch)
        assert f"{expected}.loss" in stats
        for name, value in p.params.items():
            changed = not np.array_equal(value, before[name])
            assert changed == name.startswith("b." if expected == "head" else "a."), (expected, name)


def test_phases_alternate_in_order_with_their_step_counts() -> None:
    p = dlc.compile(source=TWO_PHASES, seed=1)
    batch = _batch()
    order = []
    for _ in range(7):
        order.append(p.current_phase)
        stats = p.train_step(**batch)
        assert {k.split(".")[0] for k in stats if k != "lr"} == {order[-1]}
    assert order == ["head", "head", "body", "head", "head", "body", "head"]
    # Each phase keeps its own optimizer state and its own step count for the schedule.
    assert any(k.startswith("b.weight/head.sgd") for k in p.optimizer_state)
    assert any(k.startswith("a.weight/body.adam") for k in p.optimizer_state)


def test_checkpoint_mid_round_resumes_bit_identically(tmp_path: Path) -> None:
    batches = [_batch(k) for k in range(9)]
    straight = dlc.compile(source=TWO_PHASES, seed=2)
    losses = [straight.train_step(**b) for b in batches]
    first = dlc.compile(source=TWO_PHASES, seed=2)
    for b in batches[:4]:  # one round and one step into the next: mid-round
        first.train_step(**b)
    path = str(tmp_path / "mid.safetensors")
    first.save_checkpoint(path)
    resumed = dlc.compile(source=TWO_PHASES, seed=2)
    resumed.load_checkpoint(path)
    assert resumed.current_phase == "head"
    assert [resumed.train_step(**b) for b in batches[4:]] == losses[4:]
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_fit_and_evaluate_report_every_phase() -> None:
    p = dlc.compile(source=TWO_PHASES, seed=0)
    data = _batch()
    history = p.fit(data, epochs=2, verbose=False)
    assert {"head.loss", "body.loss"} <= set(history)
    assert {"head.loss", "body.loss"} <= set(p.evaluate(data))


@pytest.mark.parametrize("entry, message", [
    ('phase("p", params=["a"])', "needs loss="),
    ('phase("p", loss=mean(out))', "needs params="),
    ('phase("p", loss=mean(out), params=["a"], steps=0)', "steps must be a positive integer"),
    ('phase("p", loss=mean(out), params=["a"], lr=1)', "unknown setting 'lr'"),
    ('phase("p", loss=out, params=["a"])', "must be a scalar"),
])
def test_bad_phases_are_located_errors(entry: str, message: str) -> None:
    text = f"input x: f32[2, 3]\noutput out = dense(x, 2, name=\"a\")\ntrain {{\n    phases = [{entry}]\n}}\n"
    with pytest.raises(dlc.CompileError, match=message) as e:
        dlc.compile(source=text).train_step(x=np.zeros((2, 3), np.float32))
    assert e.value.loc is not None and e.value.loc.line == 4


def test_gan_file_trains_both_networks() -> None:
    gan = dlc.compile(str(MODELS / "digits_gan.dlm"), seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (32, 64)).astype(np.float32)
    before = _snapshot(gan)
    d = gan.train_step(x=x)
    g = gan.train_step(x=x)
    assert set(d) == {"discriminator.loss", "lr"} and set(g) == {"generator.loss", "lr"}
    for name, value in gan.params.items():
        assert not np.array_equal(value, before[name]), name
    samples = gan(z=np.zeros((5, 16), np.float32))["sample"]
    assert samples.shape == (5, 64) and (samples >= 0).all() and (samples <= 1).all()
