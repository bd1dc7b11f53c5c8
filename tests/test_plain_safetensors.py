"""Plain safetensors files (issue 25): `load_params` and `dlc train --init` read one written by another
framework (safetensors.torch.save_file writes the same format, with metadata {"format": "pt"}) with the same
include/exclude/rename report as a dlc checkpoint, and `dlc export --safetensors` writes the parameters as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import dlc
from dlc import cli

SOURCE = """
input x: f32[N, 6]
input y: i32[N]
enc = dense(x, 8) |> relu
output logits = dense(enc, 3, name="head")
train {
    loss = cross_entropy(logits, y)
    epochs = 1
    batch_size = 8
}
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    (tmp_path / "m.dlm").write_text(SOURCE)
    return tmp_path / "m.dlm"


def torch_like_file(path: Path) -> dict[str, np.ndarray]:
    """What safetensors.torch.save_file(encoder.state_dict()) would write for a PyTorch twin: other names, a
    float16 tensor, a counter no dlc model has."""
    rng = np.random.default_rng(1)
    tensors = {"backbone.weight": rng.normal(size=(6, 8)).astype(np.float32),
               "backbone.bias": rng.normal(size=8).astype(np.float16),
               "backbone.num_batches_tracked": np.array(7, dtype=np.int64)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return tensors


def test_load_params_reads_a_plain_file_with_the_same_report(model: Path, tmp_path: Path) -> None:
    tensors = torch_like_file(tmp_path / "enc.safetensors")
    program = dlc.compile(model)
    report = program.load_params(tmp_path / "enc.safetensors", rename={"backbone.": "enc."}, include=["enc.*"],
                                 exclude=["*num_batches_tracked"])
    assert report.loaded == ["enc.bias", "enc.weight"] and report.missing == [] and report.unexpected == []
    assert report.skipped == ["enc.num_batches_tracked"]
    np.testing.assert_array_equal(program.params["enc.weight"], tensors["backbone.weight"])
    np.testing.assert_array_equal(program.params["enc.bias"], tensors["backbone.bias"].astype(np.float32))
    with pytest.raises(dlc.CheckpointError, match=r"missing: \['enc.bias', 'enc.weight', 'head.bias'"):
        program.load_params(tmp_path / "enc.safetensors")  # strict: no rename, nothing of the model's is there


def test_a_transposed_linear_weight_is_named_as_such(model: Path, tmp_path: Path) -> None:
    save_file({"enc.weight": np.zeros((8, 6), np.float32)}, str(tmp_path / "t.safetensors"))
    with pytest.raises(dlc.CheckpointError, match=r"'enc.weight' has shape \[8, 6\].*transpose"):
        dlc.compile(model).load_params(tmp_path / "t.safetensors", include=["enc.weight"])


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_export_safetensors_and_train_init_from_it(model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(32, 6)).astype(np.float32),
             y=rng.integers(0, 3, 32).astype(np.int32))
    code, _, err = run(capsys, "train", model, "--data", tmp_path / "d.npz", "--quiet", "--out", tmp_path / "a.ckpt")
    assert code == 0, err
    code, out, err = run(capsys, "export", model, "--params", tmp_path / "a.ckpt", "--safetensors",
                         tmp_path / "p.safetensors")
    assert code == 0 and "wrote" in out, err
    plain = load_file(str(tmp_path / "p.safetensors"))  # readable without dlc
    trained = dlc.compile(model)
    trained.load_checkpoint(str(tmp_path / "a.ckpt"))
    assert sorted(plain) == sorted(trained.params)
    assert all(np.array_equal(plain[k], trained.params[k]) for k in plain)
    code, out, err = run(capsys, "train", model, "--data", tmp_path / "d.npz", "--quiet", "--epochs", "0",
                         "--init", tmp_path / "p.safetensors", "--init-include", "enc.*", "--out", tmp_path / "b.ckpt")
    assert code == 0, err
    assert "init from" in out and "loaded 2" in out and "skipped 2" in out
    code, _, err = run(capsys, "export", model)
    assert code == 1 and "nothing to write" in err
