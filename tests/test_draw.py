"""`dlc draw`: the model as written (layers as boxes, block calls as clusters, shapes on edges) and the compiled
plan (fusion groups, arena offsets) as DOT; .dot needs nothing installed, .svg/.png say how to install `dot`."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

import dlc
from dlc import cli
from dlc.draw import model_dot, plan_dot

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = ROOT / "models" / "blocks_example.dlm"


def labels(dot: str) -> list[str]:
    return re.findall(r'label="((?:[^"\\]|\\.)*)"', dot)


def test_model_picture_has_layers_clusters_and_shapes() -> None:
    dot = model_dot(dlc.compile(BLOCKS).graph, "blocks_example")
    found = labels(dot)
    assert "h: dense\\n2,112 parameters" in found  # 32 * 64 + 64: a layer is one box, not matmul + add
    assert found.count("fc1: dense\\n4,160 parameters") == 4  # stack.0-2 and the shared (tied) call
    assert {"stack", "stack.0", "stack.1", "stack.2"} <= set(found)  # block calls are clusters
    assert "matmul" not in found
    assert "f32[N, 64]" in found and "f32[N, 8]" in found  # shapes on the edges, symbolic batch kept
    assert dot.count("subgraph cluster_") == 4


def test_param_used_by_an_op_gets_its_own_box() -> None:
    source = "input x: f32[N, 3]\nparam t: f32[1] = 2.0\noutput y = x / t\n"
    found = labels(model_dot(dlc.compile(source=source).graph))
    assert "t\\nf32[1]" in found and "div" in found


def test_a_layer_op_named_by_its_binding_shows_as_written() -> None:
    """`h = dropout(g, 0.1)` is the dropout layer named h, not the primitive it expands to (issue 25)."""
    source = "input x: f32[N, 8]\ng = dense(x, 4) |> dropout(0.2)\nh = dropout(g, 0.1)\noutput o = relu(h)\n"
    found = labels(model_dot(dlc.compile(source=source).graph))
    assert "h: dropout" in found and "dropout" in found
    assert not any("dropout_mask_mul" in label for label in found)


def test_plan_picture_shows_fusion_groups_and_offsets() -> None:
    program = dlc.compile(BLOCKS, dims={"N": 64})
    dot = plan_dot(program.compile_plan(training=False), "plan")
    found = labels(dot)
    assert any(label.startswith("0: matmul  [h]\\nmatmul + add + relu") for label in found)
    assert any(re.fullmatch(r"\[64, 64\] @\d+", label) for label in found)  # arena offsets on edges
    assert any(label.startswith("arena ") for label in found)


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_dot_needs_neither_dot_nor_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    out = tmp_path / "m.dot"
    assert run(capsys, "draw", BLOCKS, "-o", out)[0] == 0
    assert out.read_text().startswith('digraph "blocks_example" {')
    assert run(capsys, "draw", BLOCKS, "--plan", "-D", "N=8", "-o", out)[0] == 0
    assert "matmul + add + relu" in out.read_text()


def test_cli_without_dot_says_how_to_install_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("graphviz")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, _, err = run(capsys, "draw", BLOCKS, "-o", tmp_path / "m.svg")
    assert code == 1 and err.startswith("dlc: error: Graphviz's `dot` program is needed")
    assert "apt install graphviz" in err and "brew install graphviz" in err and "conda" in err
    assert not (tmp_path / "m.svg").exists()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "draw", BLOCKS, "-o", tmp_path / "m.pdf")
    assert code == 1 and "must end in .dot, .svg or .png" in err
    code, _, err = run(capsys, "draw", BLOCKS, "--plan", "-o", tmp_path / "m.dot")
    assert code == 1 and "bind with -D N=<size>" in err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed (apt/brew/conda)")
def test_cli_renders_svg_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "draw", BLOCKS, "-o", tmp_path / "m.svg")[0] == 0
    assert "<svg" in (tmp_path / "m.svg").read_text()
    assert run(capsys, "draw", BLOCKS, "--plan", "-D", "N=4", "-o", tmp_path / "p.png")[0] == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
