"""The generative and reinforcement-learning models: the autoencoder, the VAE and the DQN compile, train and
behave as their files say. The accuracy targets are measured by examples/ scripts (see docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.data import digits, for_model

MODELS = Path(__file__).resolve().parent.parent / "models"


def test_denoising_autoencoder_noise_only_in_training() -> None:
    ae = dlc.compile(str(MODELS / "digits_ae.dlm"), seed=0)
    x = digits().train[0][:64].reshape(-1, 1, 8, 8)
    first = ae(x=x)["recon"]
    np.testing.assert_array_equal(first, ae(x=x)["recon"])  # inference is deterministic: no noise
    losses = [ae.train_step(x=x)["loss"] for _ in range(15)]
    assert losses[-1] < losses[0]
    assert {"x"} == set(for_model(ae, *digits().test))  # no labels for a model without an integer input


def test_vae_trains_and_decodes_latent_vectors() -> None:
    vae = dlc.compile(str(MODELS / "digits_vae.dlm"), seed=0)
    x = digits().train[0][:128]
    stats = [vae.train_step(x=x) for _ in range(30)]
    assert stats[-1]["loss"] < stats[0]["loss"]
    assert stats[-1]["kl"] > 0 and abs(stats[-1]["loss"] - stats[-1]["reconstruction"] - stats[-1]["kl"]) < 1e-3
    out = vae(x=x[:3], z=np.zeros((5, 8), np.float32))
    assert out["decoded"].shape == (5, 64) and out["z_mean"].shape == (3, 8)
    assert 0 <= out["decoded"].min() and out["decoded"].max() <= 1


def test_sync_target_copies_online_into_target() -> None:
    from dlc.rl import sync_target
    dqn = dlc.compile(str(MODELS / "cartpole_dqn.dlm"), seed=0)
    assert not np.array_equal(dqn.params["online.dense.weight"], dqn.params["target.dense.weight"])
    sync_target(dqn)
    for name, value in dqn.params.items():
        if name.startswith("online."):
            np.testing.assert_array_equal(value, dqn.params["target." + name[len("online."):]])


def test_dqn_step_updates_only_the_online_network() -> None:
    dqn = dlc.compile(str(MODELS / "cartpole_dqn.dlm"), seed=0)
    rng = np.random.default_rng(0)
    batch = {"s": rng.normal(size=(16, 4)).astype(np.float32), "a": rng.integers(0, 2, 16).astype(np.int32),
             "r": np.ones(16, np.float32), "s2": rng.normal(size=(16, 4)).astype(np.float32),
             "done": (rng.random(16) < 0.2).astype(np.float32)}
    before = {k: np.array(v) for k, v in dqn.params.items()}
    dqn.train_step(**batch)
    for name, value in dqn.params.items():
        changed = not np.array_equal(value, before[name])
        assert changed == name.startswith("online."), name


def test_short_dqn_run_on_cartpole_improves_its_return() -> None:
    pytest.importorskip("gymnasium")  # in the test extra; skipped only where it cannot be installed
    from dlc.rl import DQNConfig, evaluate, make_env, train_dqn
    dqn = dlc.compile(str(MODELS / "cartpole_dqn.dlm"), seed=0)
    env = make_env("CartPole-v1")
    untrained = float(np.mean(evaluate(dqn, env, 5, seed=0)))
    threads = dlc.get_num_threads()
    dlc.set_num_threads(1)  # what `dlc rl` does: kernels this small only wait for each other on more threads
    try:
        result = train_dqn(dqn, DQNConfig(steps=4000, learn_start=500, eps_steps=2500, eval_every=1000,
                                          eval_episodes=3, seed=0))
    finally:
        dlc.set_num_threads(threads)
    trained = float(np.mean(evaluate(dqn, env, 5, seed=0)))
    assert len(result.episode_returns) > 10
    assert trained > 2 * untrained and trained >= 40, (untrained, trained, result.evaluations)
