"""Issue 10, item 2 (and the library part of item 10): `dlc check` builds the training graph, so train-block
errors show at their source location before any training; `dlc check --lib` checks a file of blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlc import cli

HEAD = "input x: f32[N, 8, 14, 10]\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str, str]:
    path = tmp_path / "m.dlm"
    path.write_text(text)
    return run(capsys, "check", path)


@pytest.mark.parametrize("body,message,line", [
    ("output logits = relu(x)\ntrain {\n    loss = cross_entropy(logits, y)\n}\n", "undefined name 'y'", 4),
    ("input y: i32[N]\noutput logits = relu(x)\ntrain {\n    loss = cross_entropy(logits, y)\n}\n",
     "cross_entropy: integer labels must have shape [N, 8, 14]", 5),
    ("input y: i32[N, 8, 14]\noutput logits = relu(x)\ntrain {\n    loss = cross_entropy(logits, y)\n"
     "    optimizer = Adam(lr=0.1)\n}\n", "unknown optimizer 'Adam'; did you mean 'adam'?", 6),
    ("input y: i32[N, 8, 14]\noutput logits = relu(x)\ntrain {\n    loss = cross_entropy(logits, y)\n"
     "    metrics = [accuracy(logits, z)]\n}\n", "undefined name 'z'", 6),
    ("input y: i32[N, 8, 14]\noutput logits = relu(x)\ntrain {\n    loss = cross_entropy(logits, y)\n"
     "    epoch = 3\n}\n", "did you mean 'epochs'?", 6),
])
def test_check_reports_train_block_errors_at_their_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        body: str, message: str, line: int) -> None:
    code, out, err = check(tmp_path, capsys, HEAD + body)
    assert code == 1 and out == ""
    assert f"m.dlm:{line}:" in err and message in err


def test_check_summarizes_the_training_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = ("input y: i32[N, 8, 14]\noutput logits = dense(x, 10)\ntrain {\n    loss = cross_entropy(logits, y)\n"
            "    metrics = [accuracy(logits, y)]\n    optimizer = sgd(lr=0.1)\n}\n")
    code, out, _ = check(tmp_path, capsys, HEAD + body)
    assert code == 0
    assert "training: loss over y; metrics accuracy; optimizer sgd (lr 0.1); 2 trainable parameter tensors" in out


def test_check_lib_accepts_a_file_of_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "models/transformer_lib.dlm")
    assert code == 1 and "dlc check --lib" in err
    code, out, _ = run(capsys, "check", "--lib", "models/transformer_lib.dlm")
    assert code == 0 and "ok (library)" in out and "block encoder_layer(x, d_model: int" in out


def test_check_warns_about_an_unused_param(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, capsys, "input x: f32[N, 3]\nparam W: f32[3, 2]\nparam V: f32[3, 2]\n"
                                              "output y = x @ W\n")
    assert code == 0 and "ok" in out
    assert "dlc: warning: " in err and "parameter 'V' is declared but never used" in err and "'W'" not in err


def test_generate_without_params_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "models/char_lstm.dlm", "--length", "3", "--prompt", "a")
    assert code == 0 and "warning: no --params: sampling from untrained, randomly initialized weights" in err


MODELS = sorted(p for p in (Path(__file__).resolve().parent.parent / "models").glob("*.dlm")
                if not p.stem.endswith("_lib"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_every_bundled_model_checks_without_dims(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: a loss taking a mean over the symbolic batch (gelu_mlp, ew_chain, the generative models) made
    # `dlc check` ask for -D N=..., because the mean's gradient divides by a concrete element count.
    code, out, err = run(capsys, "check", model)
    assert code == 0, err
    assert "ok" in out


def test_check_prints_every_phase(capsys: pytest.CaptureFixture[str]) -> None:
    # Regression (issue 26): only the first phase was built and shown.
    code, out, _ = run(capsys, "check", "models/digits_gan.dlm")
    assert code == 0
    lines = out.splitlines()
    start = lines.index("training: 2 phases taking turns")
    assert lines[start + 1].startswith("  phase discriminator: loss over x; optimizer adam (lr 0.0002); 6 trainable")
    assert lines[start + 2].startswith("  phase generator: ")
    assert "optimizer adam (lr 0.0002); 6 trainable parameter tensors" in lines[start + 2]


def test_check_reports_an_error_in_a_later_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = ("input y: i32[N, 8, 14]\noutput logits = dense(x, 10)\ntrain {\n    a = cross_entropy(logits, y)\n"
            "    phases = [\n        phase(\"p1\", loss=a, params=[\"logits\"]),\n"
            "        phase(\"p2\", loss=mean(logits), params=[\"nothing*\"]),\n    ]\n}\n")
    code, out, err = check(tmp_path, capsys, HEAD + body)
    assert code == 1 and "phase 'p2': params ['nothing*'] select no trainable parameter" in err, err


# Four parameters of 2**31 f32 elements: 32 GiB, more than the machines that run the suite have.
TOO_BIG = """input x: f32[N, 65536]
input y: i32[N]
h1 = dense(x, 32768) |> relu
h2 = dense(h1, 65536) |> relu
h3 = dense(h2, 32768) |> relu
output logits = dense(h3, 65536)
train {
    loss = cross_entropy(logits, y)
    optimizer = adam(lr=1e-3)
}
"""


def test_check_allocates_no_parameter_memory(tmp_path: Path) -> None:
    # Regression (issue 27, defect 4): check initialized every parameter (4.75 GB for 402M parameters). The
    # child's address space is capped far below one of these parameters, so building any of them fails fast
    # (MemoryError) instead of exhausting the machine.
    path = tmp_path / "big.dlm"
    path.write_text(TOO_BIG)
    cap = 3 * 2**30
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (%d, %d)); from dlc.cli import main; "
            "sys.exit(main(['check', sys.argv[1]]))" % (cap, cap))
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"parameters: {65536 * 32768 * 4 + 32768 * 2 + 65536 * 2:,}" in done.stdout
    assert "training: loss over y" in done.stdout
