"""models/digits_dcgan.dlm (issue 26): the convolutional GAN with batch norm in both networks trains fused, each
phase moves only its own parameters, batch norm's running statistics move only for the calls its phase runs
(the discriminator's only on the generated batch in the generator phase), and fused training equals unfused.
Its quality target (mean top-class probability under digits_cnn) is measured by examples/digits_generative.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import dlc

MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_dcgan.dlm"


def _real(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, 1, 8, 8)).astype(np.float32)


def _snapshot(program: dlc.Program) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in program.params.items()}


def _moved(before: dict[str, np.ndarray], program: dlc.Program) -> set[str]:
    return {k for k, v in program.params.items() if not np.array_equal(v, before[k])}


def test_dcgan_phases_move_only_their_own_parameters_and_statistics() -> None:
    gan = dlc.compile(MODEL, seed=0)
    names = set(gan.params)
    stats = {n for n in names if n.endswith(("running_mean", "running_var"))}
    gen_bn = {n for n in stats if n.startswith("gen.")}
    disc_bn = {n for n in stats if n.startswith("disc.")}
    assert len(gen_bn) == 4 and len(disc_bn) == 2  # batch norm in both networks
    before = _snapshot(gan)
    assert set(gan.train_step(x=_real())) == {"discriminator.loss", "lr"}
    # The discriminator step updates disc.* and runs the generator (its statistics move, as netG(noise) does in
    # PyTorch's discriminator step in train mode); the generator's weights stay.
    moved = _moved(before, gan)
    assert {n for n in names if n.startswith("disc.")} <= moved and gen_bn <= moved
    assert not {n for n in moved if n.startswith("gen.")} - gen_bn
    before = _snapshot(gan)
    assert set(gan.train_step(x=_real())) == {"generator.loss", "lr"}
    moved = _moved(before, gan)
    assert {n for n in names if n.startswith("gen.")} <= moved
    # The discriminator's weights stay; its batch norm ran on the generated batch only: a twin given another
    # real batch in the same generator step ends with the same statistics and generator.
    assert not {n for n in moved if n.startswith("disc.")} - disc_bn and disc_bn <= moved
    twin = dlc.compile(MODEL, seed=0)
    twin.train_step(x=_real())
    twin.train_step(x=1 - _real())
    for name in disc_bn | {n for n in names if n.startswith("gen.")}:
        np.testing.assert_array_equal(twin.params[name], gan.params[name], err_msg=name)
    samples = gan(z=np.random.default_rng(1).standard_normal((5, 32)).astype(np.float32))["sample"]
    assert samples.shape == (5, 1, 8, 8) and (samples >= 0).all() and (samples <= 1).all()


def test_dcgan_fused_training_equals_unfused() -> None:
    fused, plain = dlc.compile(MODEL, seed=0), dlc.compile(MODEL, seed=0, fuse=False)
    for step in range(4):
        x = _real(12 + step)  # both phases twice, two batch sizes each
        a, b = fused.train_step(x=x), plain.train_step(x=x)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-4, err_msg=f"step {step} {k}")
    for name, value in fused.params.items():
        np.testing.assert_allclose(value, plain.params[name], rtol=2e-3, atol=2e-5, err_msg=name)
