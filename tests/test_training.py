"""Training: optimizer updates against their reference formulas, freezing, dropout modes, regularization,
clipping, schedules, whole-model and input gradients, losses, checkpoints (bit-identical resume, corruption)."""

from __future__ import annotations


import numpy as np
import pytest

import dlc
from dlc.errors import CheckpointError
from dlc.training.schedules import learning_rate

LINEAR = """
input x: f64[N, 3]
input t: f64[N, 2]
param W: f64[3, 2] = normal(std=0.5)
output y = x @ W
train {
    loss = mean(square(y - t))
}
"""


def _batch(seed: int = 0, n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 3)), "t": rng.standard_normal((n, 2))}


def _reference_step(name: str, hp: dict, w: np.ndarray, g: np.ndarray, state: dict, t: int, lr: float) -> np.ndarray:
    """torch.optim's update rules, written out."""
    wd = hp.get("weight_decay", 0.0)
    if name == "sgd":
        g = g + wd * w
        mom = hp.get("momentum", 0.0)
        if mom:
            buf = g.copy() if t == 1 else mom * state["buf"] + (1 - hp.get("dampening", 0.0)) * g
            state["buf"] = buf
            g = g + mom * buf if hp.get("nesterov") else buf
        return w - lr * g
    if name in ("adam", "adamw"):
        b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("eps", 1e-8)
        if name == "adamw":
            w = w * (1 - lr * hp.get("weight_decay", 0.01))
        else:
            g = g + wd * w
        state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
        state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
        mhat, vhat = state["m"] / (1 - b1 ** t), state["v"] / (1 - b2 ** t)
        return w - lr * mhat / (np.sqrt(vhat) + eps)
    if name == "rmsprop":
        alpha, eps, mom = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0.0)
        g = g + wd * w
        state["sq"] = alpha * state.get("sq", 0) + (1 - alpha) * g * g
        avg = np.sqrt(state["sq"]) + eps
        if mom:
            state["buf"] = mom * state.get("buf", 0) + g / avg
            return w - lr * state["buf"]
        return w - lr * g / avg
    if name == "adagrad":
        g = g + wd * w
        clr = lr / (1 + (t - 1) * hp.get("lr_decay", 0.0))
        state["acc"] = state.get("acc", 0) + g * g
        return w - clr * g / (np.sqrt(state["acc"]) + hp.get("eps", 1e-10))
    raise AssertionError(name)


OPTIMIZER_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "betas": [0.8, 0.9], "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.05}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
]


@pytest.mark.parametrize("name,hp", OPTIMIZER_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZER_CASES)])
def test_optimizer_matches_reference_formula(name: str, hp: dict) -> None:
    p = dlc.compile(source=LINEAR, seed=3).configure(optimizer=(name, hp))
    flat = dict(hp)
    if "betas" in flat:
        flat["beta1"], flat["beta2"] = flat.pop("betas")
    w = p.params["W"].copy()
    state: dict = {}
    for t in range(1, 5):
        batch = _batch(t)
        _, grads = p.loss_and_grads(**batch)
        w = _reference_step(name, flat, w, grads["W"], state, t, hp["lr"])
        p.train_step(**batch)
        np.testing.assert_allclose(p.params["W"], w, rtol=1e-12, atol=1e-14, err_msg=f"{name} step {t}")


def test_lr_multiplier_and_schedule() -> None:
    p = dlc.compile(source=LINEAR).configure(optimizer=("sgd", {"lr": 0.1}), lr_mult=[["W", 0.5]],
                                      schedule=("step", {"every": 2, "gamma": 0.1}))
    for t in range(4):
        w = p.params["W"].copy()
        batch = _batch(t)
        _, g = p.loss_and_grads(**batch)
        out = p.train_step(**batch)
        expected_lr = 0.1 * 0.1 ** (t // 2)
        assert out["lr"] == pytest.approx(expected_lr)
        np.testing.assert_allclose(p.params["W"], w - 0.5 * expected_lr * g["W"], rtol=1e-12)


def test_schedules() -> None:
    assert learning_rate(1.0, ("cosine", {"steps": 10, "min_lr": 0.0, "warmup": 0}), 5) == pytest.approx(0.5)
    assert learning_rate(1.0, ("cosine", {"steps": 10, "min_lr": 0.1, "warmup": 0}), 20) == pytest.approx(0.1)
    assert learning_rate(1.0, ("exponential", {"gamma": 0.5, "warmup": 0}), 3) == pytest.approx(0.125)
    assert learning_rate(2.0, ("constant", {"warmup": 4}), 1) == pytest.approx(1.0)
    assert learning_rate(2.0, ("constant", {"warmup": 4}), 9) == pytest.approx(2.0)


def test_clip_by_global_norm_and_value() -> None:
    p = dlc.compile(source=LINEAR).configure(optimizer=("sgd", {"lr": 1.0}), clip_norm=1e-3)
    w = p.params["W"].copy()
    p.train_step(**_batch())
    assert np.linalg.norm(p.params["W"] - w) == pytest.approx(1e-3, rel=1e-4)
    q = dlc.compile(source=LINEAR).configure(optimizer=("sgd", {"lr": 1.0}), clip_value=1e-3)
    w = q.params["W"].copy()
    _, g = q.loss_and_grads(**_batch())
    q.train_step(**_batch())
    np.testing.assert_allclose(q.params["W"], w - np.clip(g["W"], -1e-3, 1e-3), rtol=1e-12)


def test_l1_l2_penalties_join_the_loss() -> None:
    base = dlc.compile(source=LINEAR, seed=1)
    loss0, g0 = base.loss_and_grads(**_batch())
    reg = dlc.compile(source=LINEAR, seed=1).configure(l2=0.01, l1=0.002, regularize=["W"])
    loss1, g1 = reg.loss_and_grads(**_batch())
    w = base.params["W"]
    assert loss1 == pytest.approx(loss0 + 0.01 * (w ** 2).sum() + 0.002 * np.abs(w).sum(), rel=1e-12)
    np.testing.assert_allclose(g1["W"], g0["W"] + 0.02 * w + 0.002 * np.sign(w), rtol=1e-10)


def _numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.reshape(-1)[i] += eps
        xm.reshape(-1)[i] -= eps
        g.reshape(-1)[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def test_whole_model_gradients_of_mlp_in_f64() -> None:
    src = open("models/mlp.dlm").read().replace("dense(x, 512)", "dense(x, 16)").replace(
        "dense(h1, 256)", "dense(h1, 12)").replace("f32[N, 784]", "f32[N, 20]")
    src += "\n"
    p = dlc.compile(source=src, dtype="f64", seed=2).configure(input_grads=["x"])
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((6, 20)), "y": rng.integers(0, 10, 6).astype(np.int32)}
    _, grads = p.loss_and_grads(**batch)
    for name in ("h1.weight", "h2.bias", "logits.weight"):
        original = p.params[name].copy()

        def loss_at(v: np.ndarray, name: str = name) -> float:
            p.set_params({name: v})
            return p.loss_and_grads(**batch)[0]
        numeric = _numeric_grad(loss_at, original)
        p.set_params({name: original})
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)
    numeric_x = _numeric_grad(lambda x: p.loss_and_grads(x=x, y=batch["y"])[0], batch["x"])
    np.testing.assert_allclose(grads["x"], numeric_x, rtol=1e-6, atol=1e-9)


LOSSES = {
    "mse": (lambda p, t: ((p - t) ** 2).mean(), "float"),
    "mae": (lambda p, t: np.abs(p - t).mean(), "float"),
    "huber": (lambda p, t: np.where(np.abs(p - t) <= 1.0, 0.5 * (p - t) ** 2, np.abs(p - t) - 0.5).mean(), "float"),
    "binary_cross_entropy": (lambda x, t: (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean(), "prob"),
    "cross_entropy": (lambda x, y: -(x - np.log(np.exp(x).sum(-1, keepdims=True)))[np.arange(len(y)), y].mean(),
                      "label"),
    "nll": (lambda lp, y: -lp[np.arange(len(y)), y].mean(), "label"),
    "kl_divergence": (lambda lq, p: (p * (np.log(p) - lq)).sum() / len(p), "dist"),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_values_and_gradients(loss: str) -> None:
    ref, kind = LOSSES[loss]
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((4, 5))
    if kind == "label":
        target, decl = rng.integers(0, 5, 4).astype(np.int32), "i32[N]"
    elif kind == "prob":
        target, decl = rng.random((4, 5)), "f64[N, 5]"
    elif kind == "dist":
        target, decl = rng.dirichlet(np.ones(5), 4), "f64[N, 5]"
    else:
        target, decl = rng.standard_normal((4, 5)), "f64[N, 5]"
    src = (f"input p: f64[N, 5]\ninput t: {decl}\noutput o = p * 1\n"
           f"train {{\n loss = {loss}(p, t)\n input_grads = [p]\n}}\n")
    prog = dlc.compile(source=src)
    value, grads = prog.loss_and_grads(p=pred, t=target)
    assert value == pytest.approx(ref(pred, target), rel=1e-10)
    numeric = _numeric_grad(lambda v: prog.loss_and_grads(p=v, t=target)[0], pred)
    np.testing.assert_allclose(grads["p"], numeric, rtol=1e-6, atol=1e-9)


def test_weighted_sum_of_losses_and_custom_expression() -> None:
    src = LINEAR.replace("loss = mean(square(y - t))", "loss = 0.5 * mse(y, t) + 2 * mean(abs(y - t)) + 0.1")
    p = dlc.compile(source=src, seed=4)
    batch = _batch()
    y = batch["x"] @ p.params["W"]
    d = y - batch["t"]
    assert p.loss_and_grads(**batch)[0] == pytest.approx(0.5 * (d ** 2).mean() + 2 * np.abs(d).mean() + 0.1)


DROPOUT_MODEL = """
input x: f32[N, 8]
input y: i32[N]
h = dense(x, 32) |> relu
d = dropout(h, 0.5)
output logits = dense(d, 4)
train {
    loss = cross_entropy(logits, y)
}
"""


def test_dropout_is_identity_in_eval_and_seeded_in_training() -> None:
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    p = dlc.compile(source=DROPOUT_MODEL, seed=5)
    a, b = p(x=x)["logits"], p(x=x)["logits"]
    np.testing.assert_array_equal(a, b)
    P = p.params
    h = np.maximum(x @ P["h.weight"] + P["h.bias"], 0)
    np.testing.assert_allclose(a, h @ P["logits.weight"] + P["logits.bias"], rtol=1e-5, atol=1e-5)
    p.train()
    t1 = p(x=x)["logits"]
    assert not np.allclose(t1, a)
    np.testing.assert_array_equal(t1, dlc.compile(source=DROPOUT_MODEL, seed=5).train()(x=x)["logits"])
    assert not np.allclose(t1, dlc.compile(source=DROPOUT_MODEL, seed=6).train()(x=x)["logits"])
    p.eval()
    np.testing.assert_array_equal(p(x=x)["logits"], a)


def test_frozen_parameters_are_bitwise_unchanged() -> None:
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((40, 8)).astype(np.float32), "y": rng.integers(0, 4, 40).astype(np.int32)}
    p = dlc.compile(source=DROPOUT_MODEL).freeze("h")
    before = {k: v.copy() for k, v in p.params.items()}
    p.fit(data, epochs=2, batch_size=16, verbose=False)
    np.testing.assert_array_equal(p.params["h.weight"], before["h.weight"])
    np.testing.assert_array_equal(p.params["h.bias"], before["h.bias"])
    assert not np.array_equal(p.params["logits.weight"], before["logits.weight"])
    _, grads = p.loss_and_grads(**{k: v[:4] for k, v in data.items()})
    assert "h.weight" not in grads and "logits.weight" in grads


def _digits_like(n: int = 96) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"x": rng.standard_normal((n, 8)).astype(np.float32), "y": rng.integers(0, 4, n).astype(np.int32)}


def test_resume_from_checkpoint_is_bit_identical(tmp_path) -> None:
    data = _digits_like()
    straight = dlc.compile(source=DROPOUT_MODEL, seed=11)
    straight.fit(data, epochs=2, batch_size=32, verbose=False)

    first = dlc.compile(source=DROPOUT_MODEL, seed=11)
    first.fit(data, epochs=1, batch_size=32, verbose=False)
    ckpt = tmp_path / "run.ckpt"
    first.save_checkpoint(str(ckpt))
    resumed = dlc.compile(source=DROPOUT_MODEL, seed=11)
    resumed.load_checkpoint(str(ckpt))
    assert resumed.step_count == first.step_count and resumed.epoch == 1
    resumed.fit(data, epochs=1, batch_size=32, verbose=False)
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_corrupt_or_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    p = dlc.compile(source=DROPOUT_MODEL)
    p.train_step(**_digits_like(8))
    path = tmp_path / "c.ckpt"
    p.save_checkpoint(str(path))
    raw = path.read_bytes()
    (tmp_path / "short.ckpt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError):
        dlc.compile(source=DROPOUT_MODEL).load_checkpoint(str(tmp_path / "short.ckpt"))
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.ckpt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt"):
        dlc.compile(source=DROPOUT_MODEL).load_checkpoint(str(tmp_path / "flip.ckpt"))
    (tmp_path / "junk.ckpt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        dlc.compile(source=DROPOUT_MODEL).load_checkpoint(str(tmp_path / "junk.ckpt"))
    other = dlc.compile(source=LINEAR)
    with pytest.raises(CheckpointError, match="do not match"):
        other.load_checkpoint(str(path))
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file"


def test_early_stopping_restores_best() -> None:
    data = _digits_like()
    p = dlc.compile(source=DROPOUT_MODEL, seed=1).configure(optimizer=("sgd", {"lr": 5.0}),
                                                     early_stopping={"patience": 1, "monitor": "val_loss"})
    hist = p.fit(data, epochs=30, batch_size=32, validation=data, verbose=False)
    assert len(hist["val_loss"]) < 30
    best = min(hist["val_loss"])
    assert p.evaluate(data)["loss"] == pytest.approx(best, rel=1e-5)


def test_bad_training_settings_are_errors() -> None:
    p = dlc.compile(source=LINEAR)
    with pytest.raises(ValueError, match="unknown optimizer"):
        p.configure(optimizer="adamax")
    with pytest.raises(ValueError, match="takes no argument"):
        p.configure(optimizer=("sgd", {"betas": [0.9, 0.9]}))
    with pytest.raises(ValueError, match="did you mean"):
        p.configure(clipnorm=1.0)
    with pytest.raises(ValueError, match="input 'x'"):
        p.train_step(x=np.zeros((2, 4)), t=np.zeros((2, 2)))
    no_loss = dlc.compile(source="input x: f32[N, 2]\noutput y = relu(x)\n")
    with pytest.raises(dlc.DlcError, match="no loss"):
        no_loss.train_step(x=np.zeros((2, 2), np.float32))


def test_digits_mlp_reaches_97_percent() -> None:
    pytest.importorskip("sklearn")
    from dlc.data import digits, for_model
    p = dlc.compile("models/digits_mlp.dlm", seed=0)
    d = digits()
    p.fit(for_model(p, *d.train), verbose=False)
    assert p.evaluate(for_model(p, *d.test))["accuracy"] >= 0.97
