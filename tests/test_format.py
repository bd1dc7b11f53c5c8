"""`dlc fmt`: idempotent, keeps comments, and the formatted text parses to the same tree, on every model in
models/ and on a deliberately messy file; `--check` changes nothing and exits 1 when a file needs formatting."""

from __future__ import annotations

from pathlib import Path

import pytest

import dlc
from dlc import cli
from dlc.frontend.format import format_source
from dlc.frontend.parser import parse

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.dlm"))

MESSY = """# header comment


input x:f32[N,32]   # the input
param  w : f32[ 4 ] = normal( std = 0.02 )
block   res( x , width:int , rate : float=0.0 ){
  h=dense(x,width,name = "fc1")|>relu   # trailing
      |> dropout( rate )
  # own line comment
  return relu( x+h )
}
y = -x * 2 - -1 + x ** 2
z = concat([y,
  y], axis = -1)   ;  q = z if true else -y
out = res(x, 32)
   |> relu


train {
loss = mean(out*out)
  optimizer=adam(lr = 1e-3)
}
output out
"""

TIDY = """# header comment

input x: f32[N, 32]  # the input
param w: f32[4] = normal(std=0.02)
block res(x, width: int, rate: float = 0.0) {
    h = dense(x, width, name="fc1") |> relu  # trailing
        |> dropout(rate)
    # own line comment
    return relu(x + h)
}
y = -x * 2 - -1 + x ** 2
z = concat([y,
    y], axis=-1); q = z if true else -y
out = res(x, 32)
    |> relu

train {
    loss = mean(out * out)
    optimizer = adam(lr=1e-3)
}
output out
"""


def comments(text: str) -> list[str]:
    return [line[line.index("#"):].strip() for line in text.splitlines() if "#" in line]


@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_models_format_idempotently_to_the_same_tree(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    once = format_source(text)
    assert format_source(once) == once
    assert parse(once) == parse(text)
    assert comments(once) == comments(text)


def test_models_are_formatted() -> None:
    """The bundled models are the house style: `dlc fmt --check models/*.dlm` passes."""
    assert [p.name for p in MODELS if format_source(p.read_text(encoding="utf-8")) != p.read_text()] == []


def test_messy_file() -> None:
    assert format_source(MESSY) == TIDY
    assert format_source(TIDY) == TIDY
    assert parse(TIDY) == parse(MESSY)


def test_formatted_model_compiles_to_the_same_graph() -> None:
    a, b = dlc.compile(source=MESSY), dlc.compile(source=TIDY)
    assert [(n.op, n.inputs) for n in a.graph.nodes] == [(n.op, n.inputs) for n in b.graph.nodes]
    assert {k: v.shape for k, v in a.params.items()} == {k: v.shape for k, v in b.params.items()}


def test_cli_fmt_check_and_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy, tidy = tmp_path / "messy.dlm", tmp_path / "tidy.dlm"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    assert cli.main(["fmt", "--check", str(messy), str(tidy)]) == 1
    assert capsys.readouterr().out == f"{messy}: would reformat\n"
    assert messy.read_text() == MESSY  # --check changes nothing
    assert cli.main(["fmt", str(messy)]) == 0
    assert messy.read_text() == TIDY
    assert cli.main(["fmt", "--check", str(messy), str(tidy)]) == 0


def test_cli_fmt_refuses_a_file_that_does_not_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dlm"
    bad.write_text("input x: f32[N, 3]\ny = relu(x\noutput y\n")
    assert cli.main(["fmt", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:9: error: '(' is never closed" in err
    assert bad.read_text() == "input x: f32[N, 3]\ny = relu(x\noutput y\n"
