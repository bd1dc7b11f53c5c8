"""Issue 10, item 7: program.predict in batches; `dlc run model.dlc` runs a compiled artifact; an f32
checkpoint loads into an f64 program (--dtype f64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli

MODEL = """input x: f32[N, 5]
input y: i32[N]
h = dense(x, 8) |> relu
d = dropout(h, 0.5)
output logits = dense(d, 3)
train {
    loss = cross_entropy(logits, y)
}
"""


def test_predict_batches_match_one_call_in_eval_mode() -> None:
    program = dlc.compile(source=MODEL).train()  # predict runs in evaluation mode whatever the mode
    x = np.random.default_rng(0).standard_normal((23, 5))
    whole = program.predict({"x": x, "y": np.zeros(23, np.int32)})
    batched = program.predict((x,), batch_size=4)
    np.testing.assert_allclose(batched["logits"], whole["logits"], rtol=1e-6)
    assert batched["logits"].shape == (23, 3) and program.training
    program.eval()
    np.testing.assert_allclose(program(x=x.astype(np.float32))["logits"], whole["logits"], rtol=1e-6)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        program.predict((x,), batch_size=0)


def test_dlc_run_takes_a_compiled_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    np.save(tmp_path / "x.npy", np.ones((4, 5), np.float32))
    assert cli.main(["compile", str(model), "-D", "N=4", "-o", str(tmp_path / "m.dlc"), "--random-init"]) == 0
    capsys.readouterr()
    code = cli.main(["run", str(tmp_path / "m.dlc"), "--input", f"x={tmp_path / 'x.npy'}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("logits: f32[4, 3]")
    expected = dlc.compile(model)(x=np.ones((4, 5), np.float32))["logits"]
    assert np.array2string(expected.reshape(-1)[:2], precision=5, separator=", ")[1:-1] in out


def test_f32_checkpoint_loads_into_an_f64_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    f32 = dlc.compile(source=MODEL)
    f32.train_step(x=rng.standard_normal((8, 5)), y=rng.integers(0, 3, 8))
    f32.save_checkpoint(str(tmp_path / "c.ckpt"))
    f64 = dlc.compile(source=MODEL, dtype="f64")
    f64.load_checkpoint(str(tmp_path / "c.ckpt"))
    assert f64.step_count == 1
    for name, value in f32.params.items():
        assert f64.params[name].dtype == np.float64
        np.testing.assert_array_equal(f64.params[name], value.astype(np.float64))
    f64.train_step(x=rng.standard_normal((8, 5)), y=rng.integers(0, 3, 8))  # optimizer state came along
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    np.save(tmp_path / "x.npy", np.ones((2, 5)))
    code = cli.main(["run", str(model), "--dtype", "f64", "--params", str(tmp_path / "c.ckpt"),
                     "--input", f"x={tmp_path / 'x.npy'}"])
    assert code == 0 and capsys.readouterr().out.startswith("logits: f64[2, 3]")
