"""Attribution beyond vanilla gradients (issue 26): gradient x input, integrated gradients (completeness, the
linear case) and the deletion curve that compares methods; `dlc saliency --method`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli
from dlc.explain import deletion_curve, saliency

SMOOTH = """
input x: f64[N, 1, 4, 4]
c = conv2d(x, 3, padding=1) |> batch_norm |> tanh |> dropout(0.5)
output logits = dense(flatten(c), 3)
"""

RELU = """
input x: f64[N, 1, 4, 4]
c = conv2d(x, 4, padding=1) |> relu
output logits = dense(flatten(c), 8) |> relu |> dense(3)
"""

LINEAR = """
input x: f64[N, 4]
output logits = dense(x, 2)
"""


def _images(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 4, 4))


def _score(program: dlc.Program, x: np.ndarray, target: int) -> np.ndarray:
    return program(x=x)["logits"][:, target]


def test_integrated_gradients_are_complete() -> None:
    """The attributions of each image sum to score(x) - score(baseline)."""
    program = dlc.compile(source=SMOOTH, dtype="f64", seed=0)
    program.set_params({"c.batch_norm.running_mean": np.array([0.2, -0.1, 0.3]),
                        "c.batch_norm.running_var": np.array([0.5, 2.0, 1.5])})
    x = _images()
    for baseline in (0.0, np.full((1, 1, 4, 4), 0.5), _images(3, seed=9)):
        ig = saliency(program, {"x": x}, target=2, method="integrated_gradients", steps=16, baseline=baseline)
        start = np.broadcast_to(baseline, x.shape)
        np.testing.assert_allclose(ig.reshape(3, -1).sum(axis=1), _score(program, x, 2) - _score(program, start, 2),
                                   rtol=1e-9, atol=1e-12)
    # A ReLU network whose units switch along the path (a random baseline: from 0, a ReLU network without
    # biases is linear along the ray): complete up to a quadrature error that shrinks with the steps.
    relu = dlc.compile(source=RELU, dtype="f64", seed=3)
    x, start = np.random.default_rng(4).normal(size=(2, 3, 1, 4, 4))
    gap = _score(relu, x, 1) - _score(relu, start, 1)
    errors = [np.abs(saliency(relu, x, target=1, method="integrated_gradients", steps=steps, baseline=start)
                     .reshape(3, -1).sum(axis=1) - gap).max() for steps in (8, 256)]
    assert errors[1] < 0.01 * np.abs(gap).max() and errors[1] < errors[0] / 4


def test_linear_model_attributions() -> None:
    """For logits = x W + b: the gradient is W's column, gradient x input is x * W[:, c], and integrated
    gradients from a zero baseline equal gradient x input exactly."""
    program = dlc.compile(source=LINEAR, dtype="f64", seed=0)
    w = np.array(program.params["logits.weight"])
    x = np.random.default_rng(2).normal(size=(5, 4))
    vanilla = saliency(program, x, target=1)
    np.testing.assert_allclose(vanilla, np.broadcast_to(w[:, 1], x.shape), rtol=1e-12)
    np.testing.assert_allclose(saliency(program, x, target=1, method="grad_x_input"), x * w[:, 1], rtol=1e-12)
    np.testing.assert_allclose(saliency(program, x, target=1, method="integrated_gradients", steps=1),
                               x * w[:, 1], rtol=1e-12)
    with pytest.raises(ValueError, match="baseline"):
        saliency(program, x, target=1, method="integrated_gradients", baseline=np.zeros(3))
    with pytest.raises(ValueError, match="steps"):
        saliency(program, x, target=1, method="integrated_gradients", steps=0)
    with pytest.raises(ValueError, match="unknown output"):
        saliency(program, x, target=1, output="probs")


def _one_pixel_model() -> tuple[dlc.Program, np.ndarray, np.ndarray]:
    """Class 0 iff element 0 is on: logits = [x0 - 0.5, 0.5 - x0]; the other elements are ignored."""
    program = dlc.compile(source=LINEAR, dtype="f64", seed=0)
    w = np.zeros((4, 2))
    w[0] = [1.0, -1.0]
    program.set_params({"logits.weight": w, "logits.bias": np.array([-0.5, 0.5])})
    x = np.random.default_rng(0).uniform(0.2, 0.9, (6, 4))
    x[:, 0] = 1.0
    return program, x, np.zeros(6, np.int32)


def test_deletion_curve_removes_the_most_attributed_elements_first() -> None:
    program, x, labels = _one_pixel_model()
    right = np.tile([[5.0, 1.0, 2.0, 3.0]], (6, 1))  # element 0 ranks first
    wrong = np.tile([[0.1, 1.0, 2.0, 3.0]], (6, 1))  # element 0 ranks last
    fractions, acc = deletion_curve(program, x, labels, right)
    np.testing.assert_allclose(fractions, np.linspace(0, 1, 5))  # 4 elements: 17 steps round to 0..4
    np.testing.assert_equal(acc, [1, 0, 0, 0, 0])
    _, acc = deletion_curve(program, x, labels, wrong, counts=[0, 1, 2, 3, 4])
    np.testing.assert_equal(acc, [1, 1, 1, 1, 0])
    # |map| ranks a large negative attribution first; signed=True ranks it last.
    negative = np.tile([[-5.0, 1.0, 2.0, 3.0]], (6, 1))
    assert deletion_curve(program, x, labels, negative, counts=[1])[1][0] == 0
    assert deletion_curve(program, x, labels, negative, counts=[3], signed=True)[1][0] == 1
    # The baseline is what removed elements become: with 1.0, element 0 stays on.
    assert deletion_curve(program, x, labels, right, counts=[4], baseline=1.0)[1][0] == 1
    # Gradient x input finds the element on its own.
    maps = saliency(program, x, target=labels, method="grad_x_input")
    assert deletion_curve(program, x, labels, maps, counts=[1], signed=True)[1][0] == 0
    with pytest.raises(ValueError, match="maps"):
        deletion_curve(program, x, labels, right[:, :3])
    with pytest.raises(ValueError, match="counts"):
        deletion_curve(program, x, labels, right, counts=[5])
    with pytest.raises(ValueError, match="labels"):
        deletion_curve(program, x, labels[:2], right)


MLP = Path(__file__).resolve().parent.parent / "models" / "digits_mlp.dlm"


def test_saliency_command_methods(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    program = dlc.compile(MLP, seed=0)
    program.save_checkpoint(str(tmp_path / "mlp.ckpt"))
    images = np.random.default_rng(0).uniform(0, 1, (2, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    for method in ("grad_x_input", "integrated_gradients"):
        code = cli.main(["saliency", str(MLP), "--params", str(tmp_path / "mlp.ckpt"), "--input",
                         str(tmp_path / "x.npy"), "--target", "3", "--method", method, "--steps", "8",
                         "-o", str(tmp_path / f"{method}.npy")])
        assert code == 0 and method in capsys.readouterr().out
        expected = saliency(program, images, target=3, method=method, steps=8)
        np.testing.assert_allclose(np.load(tmp_path / f"{method}.npy"), expected, rtol=1e-6)
    assert cli.main(["saliency", str(MLP), "--params", str(tmp_path / "mlp.ckpt"), "--input", str(tmp_path / "x.npy"),
                     "--target", "3", "--method", "lime", "-o", str(tmp_path / "no.npy")]) == 2
