"""Feature visualization (issue 26): `visualize_unit` raises a unit's activation far above noise, each image is
specific to its unit, the regularizers do their job, and `dlc visualize` writes the grid or the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli
from dlc.explain import unit_activation, visualize_unit
from dlc.feature_vis import _blur

NET = """
input x: f32[N, 1, 8, 8]
c1 = conv2d(x, 6, kernel_size=3, padding=1) |> batch_norm |> relu
c2 = conv2d(c1, 8, kernel_size=3, padding=1) |> leaky_relu(0.1) |> max_pool2d(2)  # no dead units
output logits = dense(dropout(flatten(c2), 0.3), 4)
train {
    loss = mean(logits * logits)
}
"""


@pytest.fixture(scope="module")
def program() -> dlc.Program:
    program = dlc.compile(source=NET, seed=0)
    rng = np.random.default_rng(3)
    program.set_params({"c1.batch_norm.running_mean": rng.uniform(-0.1, 0.1, 6).astype(np.float32),
                        "c1.batch_norm.running_var": rng.uniform(0.5, 1.5, 6).astype(np.float32)})
    return program


def test_unit_activation_is_the_channel_mean(program: dlc.Program) -> None:
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(unit_activation(program, x, "logits", 2), program(x=x)["logits"][:, 2], rtol=1e-5)
    np.testing.assert_allclose(unit_activation(program, x, "logits", [0, 1, 2, 3, 0]),
                               program(x=x)["logits"][np.arange(5), [0, 1, 2, 3, 0]], rtol=1e-5)
    # A hidden tensor: the same model with c2 declared as an output gives the reference.
    exposed = dlc.compile(source=NET.replace("c2 = conv2d", "output c2 = conv2d"), seed=0)
    exposed.set_params(program.params)
    np.testing.assert_allclose(unit_activation(program, x, "c2", 5), exposed(x=x)["c2"][:, 5].mean(axis=(1, 2)),
                               rtol=1e-5)


def test_visualized_input_raises_its_unit_far_above_noise(program: dlc.Program) -> None:
    units = list(range(8))
    x = visualize_unit(program, "c2", units, steps=60, clip=(0, 1))
    assert x.shape == (8, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    noise = np.clip(0.5 + np.random.default_rng(1).normal(0, 0.1, (64, 1, 8, 8)), 0, 1).astype(np.float32)
    reached = np.array([unit_activation(program, x[i:i + 1], "c2", i)[0] for i in units])
    on_noise = np.stack([unit_activation(program, noise, "c2", i) for i in units])  # [unit, noise image]
    # Above every one of 64 noise images in the same range, and twice the noise average over the units.
    assert np.all(reached > on_noise.max(axis=1) + 0.01)
    assert reached.sum() > 2 * on_noise.mean(axis=1).sum()
    # Each image is for its own unit: unit i responds to image i more than to the average other image.
    table = np.stack([unit_activation(program, x, "c2", i) for i in units])  # [unit, image]
    own = np.diag(table)
    others = (table.sum(axis=1) - own) / (len(units) - 1)
    assert np.mean(own > others) >= 0.75
    # Seeded; a single index gives a single image.
    np.testing.assert_array_equal(visualize_unit(program, "c2", units, steps=60, clip=(0, 1)), x)
    np.testing.assert_array_equal(visualize_unit(program, "c2", 3, steps=5), visualize_unit(program, "c2", [3], steps=5)[0])


def test_regularizers(program: dlc.Program) -> None:
    free = visualize_unit(program, "logits", [1], steps=40, l2=0.0, blur=0.0, jitter=0)
    damped = visualize_unit(program, "logits", [1], steps=40, l2=5.0, blur=0.0, jitter=0)
    assert np.linalg.norm(damped) < 0.5 * np.linalg.norm(free)
    # The blur keeps the mean and removes high frequencies (a checkerboard nearly vanishes).
    checker = (np.indices((8, 8)).sum(axis=0) % 2).astype(np.float64)[None, None]
    blurred = _blur(checker, 1.0)
    assert blurred.std() < 0.2 * checker.std() and abs(blurred.mean() - checker.mean()) < 0.05
    smooth = visualize_unit(program, "logits", [1], steps=40, l2=0.0, blur=1.0, blur_every=1, jitter=0)
    roughness = [np.abs(np.diff(v, axis=-1)).mean() for v in (free, smooth)]
    assert roughness[1] < roughness[0]


def test_errors(program: dlc.Program) -> None:
    with pytest.raises(ValueError, match="unknown tensor 'c9'.*c1, c2"):
        visualize_unit(program, "c9", 0)
    with pytest.raises(ValueError, match=r"unit index must be in \[0, 8\)"):
        visualize_unit(program, "c2", 8)
    with pytest.raises(ValueError, match="clip"):
        visualize_unit(program, "c2", 0, clip=(1, 0))
    sized = dlc.compile(source="input x: f32[N, 1, H, W]\noutput y = mean(tanh(x), axis=[2, 3])", seed=0)
    with pytest.raises(ValueError, match="shape="):
        visualize_unit(sized, "y", 0)
    assert visualize_unit(sized, "y", [0, 0], steps=3, shape=[1, 6, 5]).shape == (2, 1, 6, 5)


def test_visualize_command(program: dlc.Program, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "net.dlm"
    model.write_text(NET)
    program.save_checkpoint(str(tmp_path / "net.ckpt"))
    base = ["visualize", str(model), "--params", str(tmp_path / "net.ckpt"), "--steps", "20", "--clip", "0", "1"]
    assert cli.main(base + ["--unit", "c2:0-2", "--unit", "logits:3", "-o", str(tmp_path / "u.npy")]) == 0
    out = capsys.readouterr().out
    assert "c2:2: activation" in out and "logits:3" in out and "wrote" in out
    got = np.load(tmp_path / "u.npy")
    np.testing.assert_array_equal(got[:3], visualize_unit(program, "c2", [0, 1, 2], steps=20, clip=(0, 1),
                                                          lr=0.05, l2=0.1))
    assert got.shape == (4, 1, 8, 8)
    assert cli.main(base + ["--unit", "c2:1,4", "-o", str(tmp_path / "u.png")]) == 0
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(base + ["--unit", "c2", "-o", str(tmp_path / "bad.png")]) == 2
    assert cli.main(base + ["--unit", "c7:0", "-o", str(tmp_path / "bad.png")]) == 1
    assert "unknown tensor 'c7'" in capsys.readouterr().err
