"""Issue 25, item 1: deploying what was trained. `dlc compile MODEL -o m.dlc` takes the trained parameters with
--params and refuses without them unless --random-init says untrained ones are meant; an artifact holding
freshly initialized parameters says so where it is written and wherever it is run (CLI and Python); `dlc export`
takes --params the same way; `dlc run` explains both of its forms and asks for a missing input with --input."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc import cli
from dlc.artifact import save_artifact

MODEL = """input x: f32[N, 5]
input y: i32[N]
h = dense(x, 8) |> relu
output logits = dense(h, 3)
train {
    loss = cross_entropy(logits, y)
    optimizer = adam(lr=0.05)
    batch_size = 8
}
"""


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A model file, a checkpoint of it after a few steps, and an input file."""
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    program = dlc.compile(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    program.fit({"x": x, "y": rng.integers(0, 3, 16)}, epochs=3, verbose=False)
    program.save_checkpoint(str(tmp_path / "c.ckpt"))
    np.save(tmp_path / "x.npy", x)
    return model, tmp_path / "c.ckpt", tmp_path / "x.npy"


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_compile_params_writes_the_trained_model(trained: tuple[Path, Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt, xfile = trained
    code, out, err = run(capsys, "compile", model, "-o", tmp_path / "t.dlc", "--params", ckpt)
    assert code == 0 and err == "" and f"(from {ckpt})" in out
    reference = dlc.compile(model)
    reference.load_checkpoint(str(ckpt))
    expected = reference(x=np.load(xfile))["logits"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained artifact loads without a warning
        loaded = dlc.load(tmp_path / "t.dlc")
    assert not loaded.untrained
    np.testing.assert_array_equal(loaded(x=np.load(xfile))["logits"], expected)
    code, out, err = run(capsys, "run", tmp_path / "t.dlc", "--input", f"x={xfile}", "-o", tmp_path / "o.npz")
    assert code == 0 and err == ""
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["logits"], expected)
    untrained = dlc.compile(model)(x=np.load(xfile))["logits"]
    assert not np.array_equal(untrained, expected)  # the test would pass with untrained parameters otherwise


def test_compile_without_params_is_refused_unless_random_init(trained: tuple[Path, Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt, xfile = trained
    out_path = tmp_path / "r.dlc"
    code, out, err = run(capsys, "compile", model, "-o", out_path)
    assert code == 1 and not out_path.exists()
    assert "untrained" in err and "--params CKPT" in err and "--random-init" in err
    code, _, err = run(capsys, "compile", model, "-o", out_path, "--params", ckpt, "--random-init")
    assert code == 1 and "not both" in err
    code, out, err = run(capsys, "compile", model, "-o", out_path, "--random-init")
    assert code == 0 and "freshly initialized" in out
    assert err.startswith("dlc: warning:") and "freshly initialized parameters (seed 0)" in err  # where it is made
    code, out, err = run(capsys, "run", out_path, "--input", f"x={xfile}")
    assert code == 0 and out.startswith("logits:")
    assert "dlc: warning:" in err and "not trained" in err  # and where it is run
    with pytest.warns(dlc.UntrainedWarning, match="freshly initialized"):
        assert dlc.load(out_path).untrained


def test_compile_summary_without_output_needs_no_params(trained: tuple[Path, Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compile", trained[0], "-D", "N=4")
    assert code == 0 and err == "" and "untrained" in out


def test_python_save_artifact_warns_only_for_untrained_parameters(trained: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    model, ckpt, _ = trained
    program = dlc.compile(model)
    with pytest.warns(dlc.UntrainedWarning):
        save_artifact(program, tmp_path / "a.dlc")
    program.load_checkpoint(str(ckpt))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_artifact(program, tmp_path / "b.dlc")
        assert not dlc.load(tmp_path / "b.dlc").untrained
    free = dlc.compile(source="input x: f32[N, 3]\noutput y = relu(x)\n")  # nothing to train: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_artifact(free, tmp_path / "c.dlc")


def test_run_artifact_refuses_params_and_says_what_to_do(trained: tuple[Path, Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt, xfile = trained
    assert run(capsys, "compile", model, "-o", tmp_path / "t.dlc", "--params", ckpt)[0] == 0
    code, _, err = run(capsys, "run", tmp_path / "t.dlc", "--params", ckpt, "--input", f"x={xfile}")
    assert code == 1 and "carries the parameters" in err and "dlc compile MODEL.dlm --params CKPT" in err


def test_run_model_file_warns_without_params(trained: tuple[Path, Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt, xfile = trained
    code, _, err = run(capsys, "run", model, "--input", f"x={xfile}")
    assert code == 0 and "dlc: warning:" in err and "--params CKPT" in err
    code, _, err = run(capsys, "run", model, "--input", f"x={xfile}", "--random-init")
    assert code == 0 and err == ""
    code, _, err = run(capsys, "run", model, "--input", f"x={xfile}", "--params", ckpt)
    assert code == 0 and err == ""


def test_run_help_names_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "--help")
    assert code == 0
    assert "dlc run MODEL.dlm --params CKPT --input" in out and "dlc run MODEL.dlc --input" in out
    assert "--random-init" in out
    assert "a model file (.dlm) or a compiled artifact (.dlc" in " ".join(out.split())
    assert run(capsys, "compile", "--help")[1].count("compiled artifact (.dlc") == 0  # other commands unchanged


def test_run_without_an_input_names_the_flag(trained: tuple[Path, Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 25, item 10."""
    model, ckpt, _ = trained
    code, _, err = run(capsys, "run", model, "--params", ckpt)
    assert code == 1 and "missing input 'x' (f32[N, 5]): give it with --input x=FILE.npy" in err


def test_export_takes_params_the_same_way(trained: tuple[Path, Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnx")
    model, ckpt, _ = trained
    onnx_path = tmp_path / "m.onnx"
    code, _, err = run(capsys, "export", model, "-o", onnx_path)
    assert code == 1 and "--params CKPT" in err and not onnx_path.exists()
    code, out, _ = run(capsys, "export", model, "-o", onnx_path, "--random-init")
    assert code == 0 and "untrained" in out
    code, out, _ = run(capsys, "export", model, "-o", onnx_path, "--params", ckpt)
    assert code == 0 and "untrained" not in out
    import onnx
    from onnx import numpy_helper
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(onnx_path)).graph.initializer}
    reference = dlc.compile(model)
    reference.load_checkpoint(str(ckpt))
    trained_values = [np.asarray(v) for v in reference.params.values()]
    assert any(any(w.shape == v.shape and np.array_equal(w, v) for v in trained_values) for w in weights.values())


def test_run_into_a_closed_pipe_ends_quietly(trained: tuple[Path, Path, Path]) -> None:
    """Issue 25, item 10: `dlc run ... | head` printed `dlc: error: [Errno 32] Broken pipe`."""
    model, ckpt, _ = trained
    x = np.zeros((4000, 5), np.float32)
    np.save(model.parent / "big.npy", x)
    script = ("import sys; from dlc import cli; sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", script, "run", str(model), "--params", str(ckpt),
                             "--input", f"x={model.parent / 'big.npy'}", "-o", str(model.parent / "o.npz")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert proc.returncode == 141
