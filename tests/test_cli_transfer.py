"""The command line of issue 14: `dlc train --init` (partial loading), `dlc eval --attack` (robust accuracy) and
`dlc saliency` (maps as .npy and as a heat map)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlc import cli

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "digits_mlp.dlm"


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "mlp.ckpt"
    assert cli.main(["train", str(MLP), "--data", "digits", "--epochs", "2", "--quiet", "--json",
                     "--out", str(path)]) == 0
    return path


def test_train_init_include(trained: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_ckpt = tmp_path / "fine.ckpt"
    code, out, _ = run(capsys, "train", MLP, "--data", "digits", "--epochs", "1", "--quiet", "--init", trained,
                       "--init-include", "h*", "--out", out_ckpt)
    assert code == 0
    assert "init from" in out and "loaded 4" in out and "skipped 2" in out and "missing 0" in out
    code, _, err = run(capsys, "train", MLP, "--data", "digits", "--epochs", "1", "--init-include", "h*")
    assert code == 1 and "--init-include needs --init" in err
    code, _, err = run(capsys, "train", MLP, "--data", "digits", "--epochs", "1", "--init", trained,
                       "--init-rename", "h1.=g1.")
    assert code == 1 and "unexpected" in err and "g1.weight" in err


def test_eval_attack_reports_robust_accuracy(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eval", MLP, "--params", trained, "--data", "digits", "--attack", "fgsm",
                       "--eps", "0.1", "--json")
    assert code == 0
    result = json.loads(out)
    assert 0 <= result["test_fgsm_accuracy"] < result["test_accuracy"]
    code, out, _ = run(capsys, "eval", MLP, "--params", trained, "--data", "digits", "--attack", "pgd",
                       "--eps", "0.1", "--steps", "3")
    assert code == 0 and "test pgd_accuracy" in out
    code, fixed, _ = run(capsys, "eval", MLP, "--params", trained, "--data", "digits", "--attack", "pgd",
                         "--eps", "0.1", "--steps", "3", "--no-random-start")
    assert code == 0 and "test pgd_accuracy" in fixed


def test_saliency_command(trained: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    images = np.random.default_rng(0).uniform(0, 1, (2, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    code, out, _ = run(capsys, "saliency", MLP, "--params", trained, "--input", tmp_path / "x.npy", "--target", 3,
                       "-o", tmp_path / "map.npy")
    assert code == 0 and "wrote" in out
    maps = np.load(tmp_path / "map.npy")
    assert maps.shape == (2, 64) and np.abs(maps).sum() > 0
    np.save(tmp_path / "one.npy", images[0])  # one image, no batch axis
    code, _, _ = run(capsys, "saliency", MLP, "--params", trained, "--input", tmp_path / "one.npy", "--target", 3,
                     "--method", "smoothgrad", "--samples", 4, "-o", tmp_path / "one.npy.npy")
    assert code == 0
    np.testing.assert_equal(np.load(tmp_path / "one.npy.npy").shape, (1, 64))
    code, _, _ = run(capsys, "saliency", MLP, "--params", trained, "--input", tmp_path / "x.npy", "--target", 3,
                     "-o", tmp_path / "map.png")
    assert code == 0 and (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run(capsys, "saliency", MLP, "--params", trained, "--input", tmp_path / "x.npy", "--target", 12,
                       "-o", tmp_path / "bad.npy")
    assert code == 1 and "target" in err
