"""Convolutional models: LeNet's whole-model gradients in f64, the reference CNNs train, batch norm freezing,
seeded augmentation, and the digits CNN learning."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.augment import Augment, rng_for


def _fd(f, x: np.ndarray, idx: list[int], eps: float = 1e-6) -> np.ndarray:
    out = []
    for i in idx:
        xp, xm = x.copy(), x.copy()
        xp.reshape(-1)[i] += eps
        xm.reshape(-1)[i] -= eps
        out.append((f(xp) - f(xm)) / (2 * eps))
    return np.array(out)


def test_lenet_whole_model_gradients_f64() -> None:
    p = dlc.compile("models/lenet.dlm", dtype="f64", seed=1).configure(input_grads=["x"])
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((2, 1, 28, 28)), "y": np.array([3, 7], dtype=np.int32)}
    _, grads = p.loss_and_grads(**batch)
    for name in ("c1.weight", "c2.bias", "f3.weight", "logits.bias"):
        original = p.params[name].copy()
        idx = list(rng.choice(original.size, size=min(6, original.size), replace=False))

        def loss_at(v: np.ndarray, name: str = name) -> float:
            p.set_params({name: v})
            return p.loss_and_grads(**batch)[0]
        numeric = _fd(loss_at, original, idx)
        p.set_params({name: original})
        np.testing.assert_allclose(grads[name].reshape(-1)[idx], numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    idx = list(rng.choice(batch["x"].size, size=8, replace=False))
    numeric = _fd(lambda x: p.loss_and_grads(x=x, y=batch["y"])[0], batch["x"], idx)
    np.testing.assert_allclose(grads["x"].reshape(-1)[idx], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("model,n,shape", [("lenet", 64, (1, 28, 28)), ("resnet8", 32, (3, 32, 32))])
def test_reference_cnns_compile_and_train(model: str, n: int, shape: tuple[int, ...]) -> None:
    p = dlc.compile(f"models/{model}.dlm", dims={"N": n})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    losses = [p.train_step(x=x, y=y)["loss"] for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert p.memory["arena_bytes"] > 0


def test_resnet8_uses_projection_shortcuts_only_when_the_shape_changes() -> None:
    names = set(dlc.compile("models/resnet8.dlm").params)
    assert "b1.proj.weight" not in names
    assert {"b2.proj.weight", "b2.proj_bn.running_mean", "b3.proj.weight"} <= names


BN_MODEL = """
input x: f32[N, 3, 8, 8]
input y: i32[N]
h = conv2d(x, 4, kernel_size=3, padding=1) |> batch_norm |> relu
g = conv2d(h, 4, kernel_size=3, padding=1) |> batch_norm |> relu
output logits = g |> global_avg_pool |> dense(3)
train { loss = cross_entropy(logits, y) }
"""


def test_freezing_a_layer_freezes_its_batch_norm_statistics() -> None:
    p = dlc.compile(source=BN_MODEL).freeze("h")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3, 8, 8)).astype(np.float32), np.array([0, 1, 2, 0], np.int32)
    before = {k: v.copy() for k, v in p.params.items()}
    for _ in range(2):
        p.train_step(x=x, y=y)
    for name, value in p.params.items():
        if name.startswith("h."):
            np.testing.assert_array_equal(value, before[name], err_msg=name)
        else:
            assert not np.array_equal(value, before[name]), name


def test_augmentation_is_seeded_and_keeps_shapes() -> None:
    images = np.random.default_rng(0).random((6, 2, 9, 9)).astype(np.float32)
    aug = Augment(crop=2, flip=True, rotate=10, scale=0.1)
    a = aug(images, rng_for(1, 0, 0))
    np.testing.assert_array_equal(a, aug(images, rng_for(1, 0, 0)))
    assert not np.array_equal(a, aug(images, rng_for(1, 0, 1)))
    assert a.shape == images.shape and a.dtype == images.dtype
    flipped = Augment(flip=True)(images, np.random.default_rng(3))
    assert all(np.array_equal(f, i) or np.array_equal(f, i[:, :, ::-1]) for f, i in zip(flipped, images))
    crop = Augment(crop=1)(images, np.random.default_rng(3))
    assert np.allclose(crop.sum(), images.sum(), rtol=0.5)


def test_digits_cnn_learns() -> None:
    pytest.importorskip("sklearn")
    from dlc.data import digits, for_model
    p = dlc.compile("models/digits_cnn.dlm", seed=0)
    d = digits()
    p.fit(for_model(p, *d.train), epochs=8, verbose=False)
    assert p.evaluate(for_model(p, *d.test))["accuracy"] >= 0.95
