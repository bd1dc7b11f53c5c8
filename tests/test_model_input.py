"""How a model reaches the compiler: `dlc.compile(path)` reads a file, `dlc.compile(source=...)` takes text,
and neither is ever mistaken for the other. Size limits hold for both, before anything big is read, and every
problem with a file (including an imported one) is a located CompileError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.frontend import elaborate, parser
from dlc.frontend.parser import MAX_SOURCE_BYTES

SMALL = "input x: f32[2, 3]\noutput y = relu(x)\n"


def test_long_one_line_source_is_text_not_a_path() -> None:
    # Regression: a one-line source over 255 bytes was taken for a path ("File name too long").
    src = "input x: f32[2, 3]; output y = " + " + ".join(["x"] * 100)
    assert len(src) > 255 and "\n" not in src
    out = dlc.compile(source=src)(x=np.ones((2, 3), np.float32))["y"]
    np.testing.assert_allclose(out, 100.0)


def test_source_ending_in_a_file_name_is_text() -> None:
    # Regression: text ending in "# a.dlm" was taken for a path.
    prog = dlc.compile(source=SMALL + "# a.dlm")
    assert prog.outputs["y"] == dlc.TensorSpec("f32", (2, 3))


def test_positional_argument_is_always_a_path(tmp_path: Path) -> None:
    with pytest.raises(dlc.CompileError, match="source="):
        dlc.compile(SMALL)
    with pytest.raises(dlc.CompileError, match="cannot read"):
        dlc.compile("input x: f32[2, 3]; output y = relu(x)")  # no such file, even though it parses as text
    with pytest.raises(dlc.CompileError, match="too long"):
        dlc.compile("x" * 5000 + ".dlm")
    with pytest.raises(TypeError, match="source="):
        dlc.compile(b"input x: f32[2]\noutput x\n")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        dlc.compile(tmp_path / "m.dlm", source=SMALL)


def test_text_obeys_the_size_limit() -> None:
    src = SMALL + "#" * MAX_SOURCE_BYTES
    with pytest.raises(dlc.CompileError, match="limited to"):
        dlc.compile(source=src)
    # Multi-byte characters count as bytes: fewer characters than the limit can still exceed it.
    src = SMALL + "#" + "é" * (MAX_SOURCE_BYTES // 2 + 1)
    assert len(src) < MAX_SOURCE_BYTES
    with pytest.raises(dlc.CompileError, match="limited to"):
        dlc.compile(source=src)


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_line_endings(tmp_path: Path, newline: str) -> None:
    # Regression: a CR-only file read as one comment line ("the model declares no output").
    text = f"# a model{newline}input x: f32[2, 3]{newline}y = relu(x){newline}output y{newline}"
    (tmp_path / "m.dlm").write_bytes(text.encode())
    assert dlc.compile(tmp_path / "m.dlm").outputs["y"] == dlc.TensorSpec("f32", (2, 3))
    assert dlc.compile(source=text).outputs["y"] == dlc.TensorSpec("f32", (2, 3))


def test_cr_only_errors_have_the_right_line(tmp_path: Path) -> None:
    (tmp_path / "m.dlm").write_bytes(b"input x: f32[2, 3]\ry = bogus(x)\routput y\r")
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(tmp_path / "m.dlm")
    assert (info.value.loc.line, info.value.loc.col) == (2, 5)


def _import_error(tmp_path: Path, line: str) -> dlc.CompileError:
    main = tmp_path / "main.dlm"
    main.write_text(f"input x: f32[2, 3]\n{line}\noutput y = relu(x)\n")
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(main)
    err = info.value
    assert err.loc is not None and (err.loc.file, err.loc.line) == (str(main), 2), err.format()
    return err


def test_huge_import_is_refused_before_reading(tmp_path: Path) -> None:
    # Regression: a 1 GiB import was read whole (4 s, 1 GiB of memory) before the size check, without location.
    # A sparse file: its size is 1 GiB, its disk use nothing, and reading it would take seconds.
    with open(tmp_path / "big.dlm", "wb") as f:
        f.truncate(1 << 30)
    err = _import_error(tmp_path, 'import "big.dlm"')
    assert "1073741824 bytes" in err.message and "limited to" in err.message


def test_too_long_import_path_is_located(tmp_path: Path) -> None:
    # Regression: escaped as a bare OSError (File name too long).
    err = _import_error(tmp_path, f'import "{"a" * 4000}.dlm"')
    assert "cannot import" in err.message


def test_missing_and_undecodable_imports_are_located(tmp_path: Path) -> None:
    assert "no such file" in _import_error(tmp_path, 'import "nope.dlm"').message
    (tmp_path / "dir.dlm").mkdir()
    assert "not a regular file" in _import_error(tmp_path, 'import "dir.dlm"').message
    # A bad byte inside an imported file is located in that file, at the byte.
    (tmp_path / "bin.dlm").write_bytes(b"block f(t) {\n  return t\xff\n}\n")
    (tmp_path / "main.dlm").write_text('from "bin.dlm" import f\ninput x: f32[2]\noutput y = f(x)\n')
    with pytest.raises(dlc.CompileError, match="UTF-8") as info:
        dlc.compile(tmp_path / "main.dlm")
    assert (info.value.loc.file, info.value.loc.line, info.value.loc.col) == (str(tmp_path / "bin.dlm"), 2, 11)


# ---- size bounds, enforced while reading (regressions: each of these files took > 10 s before an error) ----

def _located(src: str) -> dlc.CompileError:
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(source=src)
    assert info.value.loc is not None and info.value.loc.file == "<string>", info.value.format()
    return info.value


def test_half_a_million_term_sum_is_refused_while_reading() -> None:
    err = _located("input a: f32[2]\ny = " + "+".join(["a"] * 500_000) + "\noutput y\n")
    assert "statement longer than" in err.message and err.loc.line == 2


def test_hundred_thousand_statements_are_refused_while_reading() -> None:
    err = _located("input a: f32[2]\n" + "output a\n" * 100_000)  # 3 tokens a statement: under the token bound
    assert "statements" in err.message and err.loc.line == parser.MAX_STATEMENTS + 1


def test_token_bound_counts_the_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_TOKENS", 50)
    err = _located("input a: f32[2]\n" + "".join(f"y{i} = a + a\n" for i in range(20)) + "output a\n")
    assert "tokens" in err.message


def test_limits_ignore_comments_strings_and_bracketed_newlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "MAX_STATEMENTS", 4)
    src = ('# ; ; ; ( [ {\ninput a: f32[2, 3]\ny = dense(a,\n  4,\n  name="x;y;z")\nz = y |> relu\n'
           '  |> relu\noutput z\n')
    assert dlc.compile(source=src).outputs["z"] == dlc.TensorSpec("f32", (2, 4))
    assert "statements" in _located(src + "w = z\n").message


NESTED = "input x: f32[2, 4]\nblock inner(t) {\n  return relu(t)\n}\nblock outer(t) {\n  return repeat 1024 inner(t)\n}\n"


def test_nested_repeat_is_refused_at_the_outer_repeat() -> None:
    # 1024 x 1024 layers: the outer repeat knows after its first layer what the whole would add.
    err = _located(NESTED + "y = repeat 1024 outer(x)\noutput y\n")
    assert "more than 20,000 nodes" in err.message and (err.loc.line, err.loc.col) == (8, 5)


def test_node_bound_holds_without_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(elaborate, "MAX_NODES", 30)
    err = _located("input x: f32[2]\nblock f(t) {\n  a = relu(t)\n  return a + 1\n}\n"
                   + "".join(f"y{i} = f(x)\n" for i in range(40)) + "output y0\n")
    assert "nodes" in err.message and err.loc.line > 5


# ---- element counts (regression: a sum over broadcast_to(x, [2^32, 2^32, 4]) returned 0.0, a mean 1.6e-11) ----

@pytest.mark.parametrize("expr", ["sum(broadcast_to(x, [4294967296, 4294967296, 4]))",
                                  "mean(broadcast_to(x, [4294967296, 4294967296, 4]))",
                                  "reshape(broadcast_to(x, [4294967296, 4294967296, 4]), [-1])"])
def test_element_count_overflow_is_a_located_compile_error(expr: str) -> None:
    err = _located(f"input x: f32[1]\noutput y = {expr}\n")
    assert "elements" in err.message and err.loc.line == 2


def test_huge_input_type_is_located() -> None:
    err = _located("input a: f32[2]\ninput x: f32[4294967296, 4294967296, 4]\noutput y = sum(x)\n")
    assert "elements" in err.message and (err.loc.line, err.loc.col) == (2, 7)


def test_element_bound_holds_for_dimensions_bound_at_call_time() -> None:
    prog = dlc.compile(source="input x: f32[N]\noutput y = sum(broadcast_to(x, [1073741824, 1024, N]))\n")
    with pytest.raises(dlc.CompileError, match="elements"):
        prog(x=np.ones(2, np.float32))


# ---- parse time (issue 27, defect 3: 1M ';' took 17 s in Lark; benchmarks/parse_limits.py times the worst) ----

def test_separators_and_comment_lines_count_toward_the_token_bound() -> None:
    # Refused while reading, before Lark sees them: each is a token Lark would handle one by one.
    for filler in (";", ";\n", "#\n", "\n #"):
        text = "input x: f32[2]\n" + filler * (parser.MAX_TOKENS + 10) + "output x\n"
        assert "tokens" in _located(text).message, filler


def test_a_run_of_blank_and_comment_lines_is_one_token_for_the_parser() -> None:
    gap = "\n\n   # a comment |> relu\n\t\n" * 1000
    text = "input x: f32[2, 3]\nh = x" + gap + "output y = h\n"
    lark_tokens = [t.type for t in parser._parser().lex(text + "\n")]
    assert lark_tokens.count("_NL") == 3
    assert dlc.compile(source=text).outputs["y"] == dlc.TensorSpec("f32", (2, 3))
    # The same gap before a |> still continues the statement (and the |> inside a comment is not one).
    piped = "input x: f32[2, 3]\nh = x" + gap + "  |> softmax\noutput h\n"
    out = dlc.compile(source=piped)(x=np.zeros((2, 3), np.float32))["h"]
    np.testing.assert_allclose(out, 1 / 3, rtol=1e-6)


def test_megabytes_of_line_ends_are_one_token() -> None:
    text = "input x: f32[2]\n" + "\n" * (parser.MAX_SOURCE_BYTES - 64) + "output x\n"
    assert parser.parse(text).children[1].data == "output_stmt"
