"""The `dlc` command line, run in-process through `dlc.cli.main` (plus one real subprocess): outputs, exit
statuses, and clean one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp.dlm"
MODEL = "input x: f32[N, 6]\ninput t: f32[N, 2]\nh = dense(x, 8) |> relu\noutput y = dense(h, 2), s = sum(x, axis=1)\n"
SUMMARY_KEYS = {"ops", "op_counts", "kernels", "params", "memory", "inputs", "outputs", "compile_seconds"}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.dlm"
    path.write_text(MODEL)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_check_ok(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", model)
    assert code == 0
    assert out.splitlines()[0] == f"{model}: ok"
    assert "x: f32[N, 6]" in out and "y: f32[N, 2]" in out
    assert f"parameters: {6 * 8 + 8 + 8 * 2 + 2:,}" in out


def test_check_bad_file_prints_caret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dlm"
    bad.write_text("input x: f32[4]\ny = relu(xx)\noutput y\n")
    code, out, err = run(capsys, "check", bad)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{bad}:2:10: error: undefined name 'xx'; did you mean 'x'?",
                                "    y = relu(xx)", "             ^"]


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", tmp_path / "nope.dlm")
    assert code == 1 and "cannot read" in err


def summary(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, _ = run(capsys, "compile", *argv, "--json")
    assert code == 0
    return json.loads(out)


def test_compile_json(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = summary(capsys, model, "-D", "N=16")
    assert SUMMARY_KEYS <= set(data)
    assert data["ops"] == sum(data["op_counts"].values()) and data["op_counts"]["matmul"] == 2
    assert all(set(k) == {"kernel", "label"} for k in data["kernels"])
    assert any(k["kernel"] == "matmul" and "relu" in k["label"] for k in data["kernels"])  # fused epilogue
    assert data["params"] == 6 * 8 + 8 + 8 * 2 + 2
    mem = data["memory"]
    assert mem["lower_bound_bytes"] <= mem["arena_bytes"] <= mem["naive_bytes"]
    assert data["inputs"] == {"x": {"dtype": "f32", "shape": [16, 6]}}  # the target t: training only
    assert data["training_inputs"] == ["t"]
    assert data["outputs"]["y"] == {"dtype": "f32", "shape": [16, 2]}
    assert data["compile_seconds"] >= 0


def test_an_inference_plan_lists_no_training_ops_or_labels(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25: `dlc compile -D N=64` listed batch_norm_train, dropout_mask_mul and the label y."""
    cnn = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.dlm"
    code, out, _ = run(capsys, "compile", cnn, "-D", "N=64")
    assert code == 0 and "inputs:  x: f32[64, 1, 8, 8] (y: training only)" in out
    ops = next(line for line in out.splitlines() if line.startswith("ops: "))
    assert "batch_norm_eval 3" in ops and "train" not in ops and "dropout" not in ops
    code, out, _ = run(capsys, "compile", cnn, "-D", "N=64", "--train")  # the training step has them all
    assert code == 0 and "y: i32[64]" in out and "dropout_mask_mul 2" in out


def test_compile_json_reference_mlp(capsys: pytest.CaptureFixture[str]) -> None:
    if not MLP.is_file():
        pytest.skip("models/mlp.dlm is not there")
    data = summary(capsys, MLP, "-D", "N=64")
    assert SUMMARY_KEYS <= set(data)
    assert data["params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert data["outputs"]["logits"] == {"dtype": "f32", "shape": [64, 10]}


def test_compile_options(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fused = summary(capsys, model, "-D", "N=4")
    unfused = summary(capsys, model, "-D", "N=4", "--no-fuse")
    assert len(unfused["kernels"]) > len(fused["kernels"])
    assert summary(capsys, model, "-D", "N=4", "--dtype", "f64")["inputs"]["x"]["dtype"] == "f64"


def test_compile_text_summary(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", model, "-D", "N=4")
    assert code == 0
    for needle in ("compiled in", "ops: ", "kernels: ", "matmul+add+relu", "parameters: 74", "memory: arena"):
        assert needle in out


def test_compile_needs_every_dimension(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compile", model)
    assert code == 1 and out == ""
    expected = "dlc: error: symbolic dimension N is unbound; bind with -D N=<size> (dims={'N': <size>} in Python)"
    assert err.strip() == expected
    code, out, err = run(capsys, "bench", model)  # issue 10, item 9: bench words it the same
    assert code == 1 and err.strip() == expected


def test_compile_writes_artifact(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_path = tmp_path / "model.dlc"
    code, out, _ = run(capsys, "compile", model, "-D", "N=3", "-o", out_path, "--random-init")
    assert code == 0 and f"wrote {out_path}" in out
    art = dlc.load(out_path)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    expected = dlc.compile(model)(x=x)
    for name, value in art(x=x).items():
        np.testing.assert_array_equal(value, expected[name])


@pytest.mark.parametrize("argv,message", [
    (["-D", "N"], "expected NAME=SIZE"),
    (["-D", "N=x"], "size of N must be an integer"),
    (["-D", "N=0"], "size of N must be positive"),
    (["--dtype", "f16"], "invalid choice"),
])
def test_usage_errors_exit_2(model: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                             message: str) -> None:
    code, _, err = run(capsys, "compile", model, *argv)
    assert code == 2 and message in err


def test_run_writes_npz(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out_path = tmp_path / "out.npz"
    code, out, _ = run(capsys, "run", model, "--input", f"x={tmp_path / 'x.npy'}", "-o", out_path)
    assert code == 0
    assert out.splitlines()[0].startswith("y: f32[5, 2] [")
    expected = dlc.compile(model)(x=x)
    with np.load(out_path, allow_pickle=False) as saved:
        assert sorted(saved.files) == ["s", "y"]
        for name in expected:
            np.testing.assert_array_equal(saved[name], expected[name])


def test_run_with_params(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained = dlc.compile(model, seed=5, dims={"N": 2})
    from dlc.artifact import save_artifact
    save_artifact(trained, tmp_path / "m.dlc")
    x = np.ones((2, 6), np.float32)
    np.save(tmp_path / "x.npy", x)
    code, _, _ = run(capsys, "run", model, "--input", f"x={tmp_path / 'x.npy'}", "--params", tmp_path / "m.dlc",
                     "-o", tmp_path / "o.npz")
    assert code == 0
    with np.load(tmp_path / "o.npz") as saved:
        np.testing.assert_array_equal(saved["y"], trained(x=x)["y"])


def test_run_with_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not MLP.is_file():
        pytest.skip("models/mlp.dlm is not there")
    trained = dlc.compile(MLP)
    x = np.random.default_rng(2).standard_normal((4, 784)).astype(np.float32)
    trained.train_step(x=x, y=np.array([0, 1, 2, 3], np.int32))
    trained.save_checkpoint(str(tmp_path / "run.ckpt"))
    np.save(tmp_path / "x.npy", x)
    code, _, _ = run(capsys, "run", MLP, "--input", f"x={tmp_path / 'x.npy'}", "--params", tmp_path / "run.ckpt",
                     "-o", tmp_path / "o.npz")
    assert code == 0
    with np.load(tmp_path / "o.npz") as saved:
        np.testing.assert_array_equal(saved["logits"], trained(x=x)["logits"])


def test_run_params_from_other_model(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_path = tmp_path / "other.dlc"
    from dlc.artifact import save_artifact
    save_artifact(dlc.compile(source="input x: f32[2, 6]\noutput z = dense(x, 3)\n"), save_path)
    np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
    code, _, err = run(capsys, "run", model, "--input", f"x={tmp_path / 'x.npy'}", "--params", save_path)
    assert code == 1 and "parameters do not match the model" in err


@pytest.mark.parametrize("content,message", [
    (np.ones((5, 6), np.int64), "input 'x': expected dtype f32 (float32), got int64"),
    (np.ones((5, 7), np.float32), "input 'x': expected shape [5, 6]"),
    (None, "cannot read an array for input 'x'"),
])
def test_run_input_errors(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          content: np.ndarray | None, message: str) -> None:
    path = tmp_path / "x.npy"
    if content is None:
        path.write_bytes(b"not an npy file")
    else:
        np.save(path, content)
    code, _, err = run(capsys, "run", model, "--input", f"x={path}", "--random-init")
    assert code == 1 and err.startswith("dlc: error: ") and message in err


def test_run_unknown_input_and_missing_file(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
    code, _, err = run(capsys, "run", model, "--input", f"q={tmp_path / 'x.npy'}")
    assert code == 1 and "unknown input 'q'" in err
    code, _, err = run(capsys, "run", model, "--input", f"x={tmp_path / 'missing.npy'}")
    assert code == 1 and "No such file" in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"dlc {dlc.__version__}"
    for command in ("check", "compile", "run"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "-D NAME=SIZE" in out
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err


def test_keyboard_interrupt_exits_130(model: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dlc, "compile", interrupted)
    code, _, err = run(capsys, "check", model)
    assert code == 130 and "interrupted" in err


def test_subprocess_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dlm"
    bad.write_bytes(b"input x: f32[4]\ny = x @@ x\n")
    proc = subprocess.run([sys.executable, "-m", "dlc.cli", "check", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{bad}:2:")
    proc = subprocess.run([sys.executable, "-m", "dlc.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "compile" in proc.stdout


def test_train_sequence_model_on_synthetic_sequences(capsys) -> None:
    """lstm/gru/rnn/transformer train from the CLI on data shaped to their input."""
    code = cli.main(["train", "models/gru.dlm", "--data", "sequences", "--epochs", "1", "--json", "--quiet"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 1 and result["test_accuracy"] > 0.2  # chance is 0.1


@pytest.mark.parametrize("command", ["run", "train", "eval", "bench", "generate"])
def test_commands_that_run_a_model_take_threads(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--help"]) == 0
    assert "--threads N" in capsys.readouterr().out
    code, _, err = run(capsys, command, MLP, "--threads", "0")
    assert code == 2 and "expected a positive integer" in err


def test_threads_flag_sets_the_kernel_threads(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.ones((3, 6), np.float32))
    before = dlc.get_num_threads()
    try:
        code, _, _ = run(capsys, "run", model, "--input", f"x={tmp_path / 'x.npy'}", "--threads", "1")
        assert code == 0 and dlc.get_num_threads() == 1
    finally:
        dlc.set_num_threads(before)


def test_compile_train_plans_the_step_and_reports_its_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", MLP, "-D", "N=16", "--train", "--json")
    assert code == 0
    summary = json.loads(out)
    program = dlc.compile(MLP)
    lowered = program.training_plan("step", {"N": 16})[0]
    assert summary["plan"] == "train_step"
    assert summary["memory"] == lowered.memory_report() and summary["memory"]["gradient_bytes"] > 0
    assert "adam" in {k["kernel"] for k in summary["kernels"]}
    code, out, _ = run(capsys, "compile", MLP, "-D", "N=16", "--train")
    assert code == 0 and "training step compiled" in out and "gradients" in out


def test_compile_train_needs_a_train_block(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compile", model, "-D", "N=4", "--train")
    assert code == 1 and "dlc: error" in err
